"""What each function is and what it may touch: the one declaration both stacks read.

The CDK stack (``infra/functions.py``) builds each function, its environment and its IAM policy from
these specs; the local stack checks every AWS call a handler makes against the same policy
(``infra/permissions.py`` turns a spec into IAM statements). Pure Python, no CDK: the local stack
imports it without starting the CDK's runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TableAccess(StrEnum):
    """How a function uses the goals table (goals and approvals): what ``infra/permissions.py`` grants."""

    READ = "read"
    # Changes goals and approvals that exist: status moves, steps, the audit head, decisions.
    UPDATE = "update"
    # Also creates them: the api takes goals in, the approval function parks approvals.
    READ_WRITE = "read-write"


@dataclass(frozen=True)
class FunctionSpec:
    """One function: where its code is, which ASL variable names it, and what it may touch.

    Timeouts stay below the ``TimeoutSeconds`` of the order-flow task that invokes the function, so
    a slow call ends as the function's own error, which the flow's Retry and Catch understand.
    """

    name: str
    source: str
    description: str
    # None: never touches goals or approvals (the rollout guard).
    goals: TableAccess | None
    asl_variable: str | None = None
    audit: bool = False
    idempotency: bool = False
    counters: bool = False
    link_signing_key: bool = False
    # Signs (or verifies) shopper view links, with their own key ring: never an approval link.
    view_link_key: bool = False
    # Signs plan snapshots in the audit trail with the asymmetric plan-signing key (kms:Sign).
    plan_signing_key: bool = False
    # Reads the published plan-signing public keys (plan-keys/ in the audit bucket) to verify
    # signatures, e.g. a schedule's mandate; it cannot publish one.
    reads_plan_keys: bool = False
    # Signs UCP requests to the merchant, or serves the profile that publishes the public keys.
    ucp_signing_keys: bool = False
    merchant_credentials: bool = False
    llm_api_key: bool = False
    merchant: bool = False
    notifies: bool = False
    # Publishes to the brand's staff channel (staff-only approval links).
    notifies_staff: bool = False
    # Sends one-time codes by SMS to shoppers' verified phones (step-up approvals).
    sends_codes: bool = False
    approval_links: bool = False
    mutates_merchant: bool = False
    # Starts order-flow executions, reads their status and answers their task tokens.
    drives_order_flow: bool = False
    # Answers the order flow's task tokens only (no starting or reading executions).
    answers_task_tokens: bool = False
    # Queries the goals table's sparse index of decisions waiting for delivery.
    reads_pending_deliveries: bool = False
    # Queries the goals table's sparse indexes of status notices due and approvals awaiting a reminder.
    reads_due_notices: bool = False
    # Queries the goals table's sparse index of polled orders whose shipment may still move.
    reads_open_tracking: bool = False
    # Runs on a schedule (every minute), not from the flow or the API.
    schedule_minutes: int | None = None
    # How it uses the schedules table (scheduled and recurring goals); None: not at all.
    schedules: TableAccess | None = None
    # Queries the schedules table's sparse index of due occurrences (the occurrence sweep).
    reads_due_schedules: bool = False
    # Queries the schedules table's index by user (a shopper's schedules, GET /schedules?userId=).
    reads_user_schedules: bool = False
    # Starts order-flow executions only (no task tokens, no reads): the occurrence sweep.
    starts_order_flow: bool = False
    # Starts the undo flow's executions (the shopper's undo request): nothing else on it.
    starts_undo_flow: bool = False
    # Invoked by EventBridge Scheduler every N minutes (a schedule group, an invoke-only role, a DLQ).
    scheduler_minutes: int | None = None
    # Published versions start from a SnapStart snapshot of their initialised environment (Python
    # 3.12+): for functions on a shopper's or approver's path whose init is worth skipping.
    snap_start: bool = False
    # Reads the brand's rollout flags from AppConfig (its live and its floor environment).
    reads_rollout: bool = False
    # Deploys rollout settings: new hosted versions of the flags profile, deployments to both environments.
    writes_rollout: bool = False
    # Publishes to the brand's operators on the stack's alarm topic.
    notifies_operators: bool = False
    # Invoked by EventBridge when one of the anomaly alarms enters ALARM (``infra/rollout.py``).
    on_anomaly_alarm: bool = False
    timeout_seconds: int = 30
    memory_mb: int = 512

    @property
    def construct_id(self) -> str:
        return self.name.capitalize()

    @property
    def writes_encrypted_data(self) -> bool:
        writes_schedules = self.schedules is not None and self.schedules is not TableAccess.READ
        return (
            (self.goals is not None and self.goals is not TableAccess.READ)
            or self.audit
            or self.idempotency
            or self.counters
            or writes_schedules
        )


_RW = TableAccess.READ_WRITE
_UPDATE = TableAccess.UPDATE

FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        name="api",
        source="api",
        description="HTTP API: goals, approvals, audit and the OpenAPI document",
        goals=_RW,
        audit=True,
        idempotency=True,
        link_signing_key=True,
        # Verifies shopper view links, and signs the one GET /goals/{id} shows.
        view_link_key=True,
        plan_signing_key=True,
        ucp_signing_keys=True,
        approval_links=True,
        drives_order_flow=True,
        # POST /goals/{id}/undo starts the goal's undo execution.
        starts_undo_flow=True,
        # An approval re-checks the goal's hold on the daily limits; a rejection gives it back.
        counters=True,
        # The approval page sends the one-time code a step-up approval needs.
        sends_codes=True,
        # Takes scheduled and recurring goals in; shows, pauses, resumes and cancels them.
        schedules=_RW,
        # Lists a shopper's schedules (GET /schedules and the shopper view page).
        reads_user_schedules=True,
        snap_start=True,
        # Refuses goals at rollout stage off.
        reads_rollout=True,
        timeout_seconds=15,
    ),
    FunctionSpec(
        name="planner",
        source="planner",
        description="Turns a goal into a concrete plan with read-only merchant lookups",
        asl_variable="PlannerFunctionArn",
        goals=_UPDATE,
        audit=True,
        # Signs the plan snapshot in its audit record; it never holds the approval-link key, so
        # planning (untrusted text, model output) cannot mint approval links.
        plan_signing_key=True,
        llm_api_key=True,
        merchant=True,
        # Discovery, catalog search and the pricing session are merchant calls: a merchant that
        # authenticates platforms needs its credential on them too.
        merchant_credentials=True,
        ucp_signing_keys=True,
        timeout_seconds=100,
        memory_mb=1024,
    ),
    FunctionSpec(
        name="catalog",
        source="connectors/catalog",
        description="Read-only catalog connector",
        asl_variable="CatalogFunctionArn",
        goals=TableAccess.READ,
        merchant=True,
        merchant_credentials=True,  # the price check opens a pricing session at the merchant
        ucp_signing_keys=True,
    ),
    FunctionSpec(
        name="validator",
        source="validator",
        description="Checks a plan against the brand's policies, limits and risk tiers",
        asl_variable="ValidatorFunctionArn",
        goals=_UPDATE,
        audit=True,
        counters=True,
        # An occurrence of a schedule is held to the schedule's mandate, whose signature it verifies.
        reads_plan_keys=True,
        schedules=TableAccess.READ,
        snap_start=True,
        # Ends a checked plan PLANNED_ONLY when the rollout stage or the pilot keeps it from running.
        reads_rollout=True,
        memory_mb=1024,
    ),
    FunctionSpec(
        name="approval",
        source="approval",
        description="Records a pending approval and sends the signed approval link",
        asl_variable="ApprovalFunctionArn",
        goals=_RW,
        audit=True,
        link_signing_key=True,
        plan_signing_key=True,
        notifies=True,
        notifies_staff=True,
        approval_links=True,
    ),
    *(
        FunctionSpec(
            name=name,
            source=f"connectors/{name}",
            description=f"Mutating {name} connector",
            asl_variable=f"{name.capitalize()}FunctionArn",
            goals=_UPDATE,
            audit=True,
            idempotency=True,
            merchant_credentials=True,
            merchant=True,
            ucp_signing_keys=True,
            mutates_merchant=True,
            # The kill switch stops a mutating step that has not started.
            reads_rollout=True,
            # A merchant total above the approved one (within tolerance) must still fit the daily limits.
            counters=name == "payment",
            timeout_seconds=50,
        )
        for name in ("checkout", "payment", "fulfillment", "orders")
    ),
    FunctionSpec(
        name="notify",
        source="connectors/notify",
        description="Sends receipts and status notifications",
        asl_variable="NotifyFunctionArn",
        goals=_UPDATE,
        audit=True,
        # A completed order is counted here, for the validator's per-day spend and velocity policies.
        counters=True,
        notifies=True,
        # Signs the shopper's view link in receipts and outcome notices, with the view links' own key
        # ring: it cannot read the approval-link key, so it cannot mint approval links.
        view_link_key=True,
        approval_links=True,
    ),
    FunctionSpec(
        name="compensator",
        source="compensator",
        description="Undoes executed steps in reverse order",
        asl_variable="CompensatorFunctionArn",
        goals=_UPDATE,
        audit=True,
        idempotency=True,
        merchant_credentials=True,
        merchant=True,
        ucp_signing_keys=True,
        mutates_merchant=True,
        # A compensated or undone goal gives its hold on the daily limits back.
        counters=True,
        # An undo after shipment files a return and tells the shopper so.
        notifies=True,
        timeout_seconds=100,
    ),
    FunctionSpec(
        name="redelivery",
        source="redelivery",
        description="Sends recorded approval decisions that have not reached their flow yet",
        # Marks decisions delivered (or expired) and notes the redelivery in the audit trail.
        goals=_UPDATE,
        audit=True,
        answers_task_tokens=True,
        reads_pending_deliveries=True,
        schedule_minutes=1,
        # Below the schedule's period, so sweeps do not pile up.
        timeout_seconds=50,
        memory_mb=256,
    ),
    FunctionSpec(
        name="notices",
        source="notices",
        description="Tells due status changes to shoppers and the brand; reminds approvers before links expire",
        # Claims each notice and reminder with a conditional write, and notes reminders and the
        # channel an email went by in the audit trail.
        goals=_UPDATE,
        audit=True,
        # A reminder carries the approval's own signed link, re-signed from its recorded claims: the
        # only reason this function reads the approval-link key (its status notices use the view key).
        link_signing_key=True,
        # The shopper's outcome notices carry a view link, signed with the view links' own key ring.
        view_link_key=True,
        approval_links=True,
        notifies=True,
        notifies_staff=True,
        reads_due_notices=True,
        schedule_minutes=1,
        timeout_seconds=50,
        memory_mb=256,
    ),
    FunctionSpec(
        name="tracking",
        source="tracking",
        description="Applies pushed order events and reads the orders of merchants that do not push them",
        # Sets a goal's tracking, links and claims events (UpdateItem only) and notes them in the audit.
        goals=_UPDATE,
        audit=True,
        reads_open_tracking=True,
        # Get Order at the merchant: signed and credentialed like every call to it, but read-only.
        merchant=True,
        merchant_credentials=True,
        ucp_signing_keys=True,
        # Shipped and delivered notices to the shopper.
        notifies=True,
        # A returned order gives its daily-limit hold back, as an undo does.
        counters=True,
        # Every minute: a pushed event's notice waits at most that long.
        schedule_minutes=1,
        # Below the schedule's period, so sweeps do not pile up.
        timeout_seconds=50,
        memory_mb=256,
    ),
    FunctionSpec(
        name="occurrences",
        source="occurrences",
        description="Fires the due occurrences of scheduled and recurring goals, each as a normal goal",
        # Takes each occurrence in as a goal (the submission claim, the goal) and notes it in the audit.
        goals=_RW,
        audit=True,
        schedules=_UPDATE,
        reads_due_schedules=True,
        starts_order_flow=True,
        # An occurrence is a goal like any other: refused at rollout stage off.
        reads_rollout=True,
        scheduler_minutes=1,
        # Below the schedule's period, so sweeps do not pile up.
        timeout_seconds=50,
        memory_mb=256,
    ),
    FunctionSpec(
        name="guard",
        source="rollout_guard",
        description="Drops the brand to rollout stage read-only when an anomaly alarm fires",
        goals=None,
        # Audits the stage change on the brand's rollout chain.
        audit=True,
        reads_rollout=True,
        writes_rollout=True,
        notifies_operators=True,
        on_anomaly_alarm=True,
        timeout_seconds=30,
        memory_mb=256,
    ),
)
