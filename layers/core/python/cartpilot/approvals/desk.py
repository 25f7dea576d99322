"""What an approver's link can do: show the plan (never changing anything) and decide once.

A decision is recorded with a conditional write before anything else happens, so two
POSTs racing each other produce one decision. An approver may leave out the plan's
optional steps (gift-wrap): the desk builds the reduced plan, re-validates it against
the price snapshot the original was checked with, and resumes the flow with the reduced
plan, whose hash is the one bound into the approval.

The confirmation phrase of a strong-tier approval always names the amount that will be
charged: with an optional step left out, that is the reduced total, and the page shows
the phrase for each choice.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal, NoReturn

from pydantic import ValidationError

from cartpilot.approvals.delivery import TOO_LATE, DecisionCourier, Delivered
from cartpilot.approvals.links import LinkClaims, LinkExpired, LinkInvalid, verify_approval_link
from cartpilot.approvals.model import (
    AlreadyDecided,
    Approval,
    ApprovalStatus,
    DroppedStep,
    confirmation_phrase,
    phrase_matches,
)
from cartpilot.approvals.ports import ApprovalStore
from cartpilot.approvals.staff import WrongApprovalRoute, check_route, decided_by
from cartpilot.approvals.step_up import (
    CODE_TTL_SECONDS,
    MAX_ATTEMPTS,
    MAX_SENDS,
    STEP_UP_LOCK,
    CodeRefused,
    Failure,
    SendRefusal,
    SendRefused,
    StepUp,
    methods_of,
)
from cartpilot.audit.snapshots import PlanSigner, signed_plan_detail
from cartpilot.brands.activity import LimitReached, OrderCounters
from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory, UserProfile
from cartpilot.goals.ledger import GoalLedger
from cartpilot.goals.lifecycle import InvalidTransition
from cartpilot.goals.model import ApprovalSummary, GoalRecord, GoalStatus
from cartpilot.goals.ports import Workflow
from cartpilot.kernel.clock import utc_now
from cartpilot.kernel.errors import Refusal
from cartpilot.kernel.keyring import KeySource
from cartpilot.kernel.money import Money, total_of
from cartpilot.kernel.observability import logger, metrics
from cartpilot.plans.model import Plan, PlanItem, Step
from cartpilot.plans.reservations import release_for_goal, reserve_for_goal
from cartpilot.plans.verdicts import RiskTier, Verdict, stricter


class DeskError(Refusal):
    """Refused by the approval desk."""


class DropRefused(ValueError):
    """The approver asked to leave out a step that cannot be left out."""


@dataclass(frozen=True)
class LinkParams:
    exp: str
    kid: str
    sig: str

    def expires_at(self) -> int | None:
        """The expiry as epoch seconds, or None when it is not one. ASCII digits only: ``str.isdigit``
        accepts "²" and other Unicode digits that ``int`` refuses, and ``int`` refuses more than
        4,300 digits; twelve digits reach past the year 30000."""
        if not (self.exp.isascii() and self.exp.isdigit() and len(self.exp) <= 12):
            return None
        return int(self.exp)


@dataclass(frozen=True)
class OptionalStep:
    """An optional step the page offers to leave out, and what leaving it out does."""

    step_id: str
    items: list[PlanItem]
    cost: Money
    total_without: Money
    phrase_without: str | None


@dataclass(frozen=True)
class CodePrompt:
    """What the page says about the one-time code a step-up approval needs."""

    sms: bool  # a code can be sent to the shopper's verified phone
    app: bool  # the shopper has an authenticator app enrolled
    attempts_left: int
    sends_left: int


@dataclass(frozen=True)
class ApprovalView:
    approval: Approval
    goal: GoalRecord
    plan: Plan
    phrase: str | None
    link: LinkParams
    outcome: str | None = None
    options: list[OptionalStep] = field(default_factory=list)
    # This request sent the recorded decision and the flow has not taken it yet.
    undelivered: bool = False
    code: CodePrompt | None = None  # a step-up approval still waiting for its decision
    notice: str | None = None  # what this request did that decided nothing (a code was sent)


def items_of_step(plan: Plan, step: Step) -> list[PlanItem]:
    """The summary items a checkout step buys (one item per line, matched by id and quantity)."""
    lines = getattr(step.args, "lines", [])
    wanted = Counter((line.itemId, line.quantity) for line in lines)
    found: list[PlanItem] = []
    for item in plan.summary.items:
        key = (item.itemId, item.quantity)
        if wanted[key] > 0:
            wanted[key] -= 1
            found.append(item)
    return found


def reduce_plan(plan: Plan, drop: Collection[str], *, plan_id: str, created_at: str) -> Plan:
    """The plan without the given optional steps and what they buy, totals and payment recomputed.

    The result is a new plan (new id, new hash); it still has to pass validation.
    """
    unknown = [step_id for step_id in drop if step_id not in {step.id for step in plan.steps}]
    if unknown:
        raise DropRefused(f"the plan has no step {', '.join(sorted(unknown))}")
    dropped = [step for step in plan.steps if step.id in drop]
    required = [step.id for step in dropped if not step.optional]
    if required:
        raise DropRefused(f"step {', '.join(required)} is not optional")
    if dropped and plan.summary.tax is not None:
        # The merchant taxed the whole order; without a step the tax is unknown until it prices again.
        raise DropRefused("the merchant's tax covers every item: leaving one out needs a new price")
    removed = Counter((item.itemId, item.quantity) for step in dropped for item in items_of_step(plan, step))
    kept_items: list[PlanItem] = []
    for item in plan.summary.items:
        key = (item.itemId, item.quantity)
        if removed[key] > 0:
            removed[key] -= 1
            continue
        kept_items.append(item)
    subtotal = total_of([item.unitPrice.times(item.quantity) for item in kept_items], plan.currency)
    total = subtotal + plan.summary.shipping.price
    document = plan.model_dump(mode="json")
    document["planId"] = plan_id
    document["createdAt"] = created_at
    document["summary"]["items"] = [item.model_dump(mode="json") for item in kept_items]
    document["summary"]["subtotal"] = subtotal.model_dump(mode="json")
    document["summary"]["total"] = total.model_dump(mode="json")
    steps = []
    for step in document["steps"]:
        if step["id"] in drop:
            continue
        if step["action"] == "payment.complete":
            step["args"]["amount"] = total.model_dump(mode="json")
            step["estimatedCost"] = total.model_dump(mode="json")
        steps.append(step)
    document["steps"] = steps
    try:
        return Plan.model_validate(document)
    except ValidationError as exc:
        raise DropRefused("leaving that out would leave nothing to buy") from exc


def _dropped_steps(plan: Plan, drop: Collection[str]) -> list[DroppedStep]:
    return [
        DroppedStep(
            stepId=step.id,
            items=[f"{item.quantity} x {item.title}" for item in items_of_step(plan, step)],
            cost=step.estimatedCost,
        )
        for step in plan.steps
        if step.id in drop
    ]


def _delivery_told(view: ApprovalView) -> ApprovalView:
    """The view after this request sent the decision: says so when the flow has not taken it."""
    return replace(view, undelivered=view.approval.undelivered)


_LOCKED = "too many wrong codes: this approval is locked and the order will not be placed"


def _code_refusal(refused: CodeRefused) -> DeskError:
    """What the approver reads; the same words for a wrong, used or expired code."""
    if refused.locked:
        return DeskError(423, "APPROVAL_LOCKED", _LOCKED)
    if refused.failure is Failure.MISSING:
        return DeskError(
            422, "CODE_REQUIRED", "Approving this order needs the six-digit code sent to your phone."
        )
    if refused.failure is Failure.NOT_ENROLLED:
        return DeskError(409, "NO_VERIFICATION", "no phone or authenticator app is enrolled for this account")
    return DeskError(
        422,
        "CODE_INVALID",
        f"That code is not valid (wrong, used or expired). {refused.attempts_left} attempts left.",
    )


def _send_refusal(reason: SendRefusal) -> DeskError:
    if reason is SendRefusal.LOCKED:
        return DeskError(423, "APPROVAL_LOCKED", _LOCKED)
    if reason is SendRefusal.TOO_MANY:
        return DeskError(429, "TOO_MANY_CODES", f"{MAX_SENDS} codes were sent already: use the last one")
    return DeskError(429, "CODE_JUST_SENT", "a code was sent moments ago: wait half a minute for another")


def _refuse_expired(approval: Approval) -> None:
    if approval.status is not ApprovalStatus.EXPIRED:
        return
    if approval.delivery is not None:
        # A decision was recorded and the flow stopped waiting before it got it.
        raise DeskError(410, "APPROVAL_EXPIRED", TOO_LATE)
    raise DeskError(410, "APPROVAL_EXPIRED", "this approval is no longer waiting for a decision")


class ApprovalDesk:
    def __init__(
        self,
        *,
        ledger: GoalLedger,
        approvals: ApprovalStore,
        keys: KeySource,
        workflow: Workflow,
        brand: BrandConfig,
        users: UserDirectory,
        counters: OrderCounters,
        signer: PlanSigner,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], None] = time.sleep,
        step_up: StepUp | None = None,
    ) -> None:
        self._ledger = ledger
        self._approvals = approvals
        self._keys = keys
        self._workflow = workflow
        self._brand = brand
        self._users = users
        self._counters = counters
        # Plan snapshots are signed with the plan-signing key, links with the link key ring.
        self._signer = signer
        self._clock = clock
        self._step_up = step_up
        self._courier = DecisionCourier(
            approvals=approvals, workflow=workflow, goals=ledger.store, now_iso=self._now_iso, sleep=sleep
        )

    def open(self, approval_id: str, link: LinkParams, *, staff_member: str | None = None) -> ApprovalView:
        """GET: verifies the link and shows the plan. Reads only; mail scanners open links.
        ``staff_member``: the authenticated staff member on the staff route (``approvals.staff``)."""
        approval = self._verified(approval_id, link)
        self._check_route(approval, staff_member)
        _refuse_expired(approval)
        if approval.undelivered:
            # Not a decision: the one recorded is sent again, to the flow that waits for it.
            approval = self._deliver(approval)
            return _delivery_told(self._view(approval, link))
        logger.debug(
            "approval page opened", extra={"approvalId": approval_id, "status": approval.status.value}
        )
        return self._view(approval, link)

    def decide(
        self,
        approval_id: str,
        link: LinkParams,
        decision: Literal["approve", "reject"],
        phrase: str | None,
        drop: Collection[str] = (),
        *,
        staff_member: str | None = None,
        otp: str | None = None,
    ) -> ApprovalView:
        approval = self._verified(approval_id, link)
        self._check_route(approval, staff_member)
        decider = decided_by(approval, staff_member)
        _refuse_expired(approval)
        if approval.status is not ApprovalStatus.PENDING:
            if approval.undelivered:
                approval = self._deliver(approval)
                return _delivery_told(self._view(approval, link, outcome="already-decided"))
            return self._view(approval, link, outcome="already-decided")
        goal = self._ledger.store.require(approval.goalId)
        try:
            plan = self._plan_of(goal, approval)
            if goal.status is not GoalStatus.AWAITING_APPROVAL:
                raise DeskError(410, "APPROVAL_EXPIRED", "this approval is no longer waiting for a decision")
        except DeskError:
            # A racing POST may have decided (and the flow moved on) since the approval was read.
            current = self._approvals.get(approval_id)
            if current is not None and current.status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
                return self._view(current, link, outcome="already-decided")
            raise
        if decision == "reject":
            return self._reject(approval, link, decider)
        approved, verdict = plan, None
        if drop:
            approved, verdict = self._reduced(goal, approval, plan, drop)
        if approval.tier is RiskTier.STRONG_APPROVAL:
            expected = confirmation_phrase(approved.summary.total)
            if not phrase_matches(expected, phrase):
                raise DeskError(422, "PHRASE_MISMATCH", f"Type the confirmation phrase exactly: {expected}")
        if approval.stepUp:
            # Checked last: a code is spent only on an approval that is otherwise ready to go.
            try:
                self._check_code(approval, goal, otp, decider, link)
            except DeskError as refused:
                # A parallel post with the same code may have approved meanwhile: show its decision.
                current = self._approvals.get(approval_id) if refused.code == "CODE_INVALID" else None
                if current is not None and current.status is ApprovalStatus.APPROVED:
                    return self._view(current, link, outcome="already-decided")
                raise
        return self._approve(approval, link, plan, approved, verdict, _dropped_steps(plan, drop), decider)

    def send_code(
        self, approval_id: str, link: LinkParams, *, staff_member: str | None = None
    ) -> ApprovalView:
        """Sends the shopper a one-time code for a step-up approval. Decides nothing."""
        approval = self._verified(approval_id, link)
        self._check_route(approval, staff_member)
        _refuse_expired(approval)
        if approval.status is not ApprovalStatus.PENDING:
            return self._view(approval, link, outcome="already-decided")
        if not approval.stepUp:
            raise DeskError(422, "NO_CODE_NEEDED", "this approval needs no code")
        goal = self._ledger.store.require(approval.goalId)
        if goal.status is not GoalStatus.AWAITING_APPROVAL:
            raise DeskError(410, "APPROVAL_EXPIRED", "this approval is no longer waiting for a decision")
        step_up, profile = self._require_step_up(), self._profile_of(goal)
        try:
            sent = step_up.send_code(approval_id, profile, goal_id=goal.goalId, total=approval.total.format())
        except LookupError as exc:
            raise DeskError(
                422, "NO_VERIFIED_PHONE", "no phone is verified for this account: use your authenticator app"
            ) from exc
        except SendRefused as refused:
            raise _send_refusal(refused.reason) from refused
        self._ledger.note(
            goal.goalId,
            actor=f"approver:{decided_by(approval, staff_member)}",
            event="approval.code-sent",
            plan_hash=approval.planHash,
            # Neither the code nor the phone number: only that one went, and until when it works.
            detail={"approvalId": approval_id, "channel": "sms", "codeExpiresAt": sent.expires_at,
                    "sendsLeft": sent.sends_left},
        )  # fmt: skip
        minutes = CODE_TTL_SECONDS // 60
        return replace(
            self._view(approval, link),
            notice=f"We sent a six-digit code by SMS to your verified phone. It works for {minutes} minutes.",
        )

    def _check_code(
        self, approval: Approval, goal: GoalRecord, otp: str | None, decider: str, link: LinkParams
    ) -> None:
        """Spends the approval's one-time code, or refuses; five wrong codes lock the approval."""
        step_up = self._require_step_up()
        try:
            step_up.verify(approval.approvalId, self._profile_of(goal), otp)
        except CodeRefused as refused:
            # The audit hears of every refusal, never of the code typed.
            self._ledger.note(
                goal.goalId,
                actor=f"approver:{decider}",
                event="approval.code-refused",
                plan_hash=approval.planHash,
                detail={"approvalId": approval.approvalId, "reason": refused.failure.value,
                        "attemptsLeft": refused.attempts_left},
            )  # fmt: skip
            logger.warning(
                "one-time code refused",
                extra={"approvalId": approval.approvalId, "reason": refused.failure.value},
            )
            if refused.locked_now:
                self._lock(approval, link)
            raise _code_refusal(refused) from refused
        self._ledger.note(
            goal.goalId,
            actor=f"approver:{decider}",
            event="approval.code-accepted",
            plan_hash=approval.planHash,
            detail={"approvalId": approval.approvalId},
        )

    def _lock(self, approval: Approval, link: LinkParams) -> NoReturn:
        """Too many wrong codes: the approval is closed as rejected, which ends the goal (the flow
        tells the shopper why); any later post, even with the right code, changes nothing."""
        try:
            decided = self._approvals.decide(
                approval.approvalId,
                ApprovalStatus.REJECTED,
                decided_at=self._now_iso(),
                decided_by=STEP_UP_LOCK,
            )
        except AlreadyDecided:
            # A racing post decided first (with the right code, before the last wrong one): it stands.
            raise DeskError(423, "APPROVAL_LOCKED", _LOCKED) from None
        self._move_goal(decided, approval=self._goal_approval(decided))
        self._ledger.note(
            decided.goalId,
            actor="approval",
            event="approval.locked",
            plan_hash=decided.planHash,
            detail={"approvalId": decided.approvalId, "attempts": MAX_ATTEMPTS},
        )
        release_for_goal(
            decided.goalId, counters=self._counters, ledger=self._ledger,
            actor="approval", why="approval locked", at=self._clock(),
        )  # fmt: skip
        self._deliver(decided, fresh=True)
        logger.info("approval locked", extra={"approvalId": decided.approvalId, "goalId": decided.goalId})
        raise DeskError(423, "APPROVAL_LOCKED", _LOCKED)

    def _require_step_up(self) -> StepUp:
        if self._step_up is None:
            raise DeskError(503, "STEP_UP_UNAVAILABLE", "one-time codes cannot be checked right now")
        return self._step_up

    def _profile_of(self, goal: GoalRecord) -> UserProfile:
        profile = self._users.get(goal.userId)
        if profile is None:
            raise DeskError(409, "NO_PROFILE", "the shopper's profile is gone")
        return profile

    def _code_prompt(self, approval: Approval, goal: GoalRecord) -> CodePrompt | None:
        if not approval.stepUp or approval.status is not ApprovalStatus.PENDING:
            return None
        profile = self._users.get(goal.userId)
        sms, app = methods_of(profile) if profile is not None else (False, False)
        state = self._step_up.state(approval.approvalId) if self._step_up is not None else None
        return CodePrompt(
            sms=sms,
            app=app,
            attempts_left=MAX_ATTEMPTS - (state.attempts if state else 0),
            sends_left=MAX_SENDS - (state.sends if state else 0),
        )

    @staticmethod
    def _check_route(approval: Approval, staff_member: str | None) -> None:
        try:
            check_route(approval, staff_member)
        except WrongApprovalRoute as exc:
            logger.warning("approval refused on this route", extra={"approvalId": approval.approvalId,
                                                                     "reason": exc.code})  # fmt: skip
            raise DeskError(403, exc.code, exc.message) from exc

    def _reduced(
        self, goal: GoalRecord, approval: Approval, plan: Plan, drop: Collection[str]
    ) -> tuple[Plan, Verdict]:
        try:
            reduced = reduce_plan(
                plan,
                drop,
                plan_id=f"p-{uuid.uuid4().hex[:24]}",
                created_at=self._now_iso(),
            )
        except DropRefused as exc:
            raise DeskError(422, "DROP_REFUSED", str(exc)) from exc
        verdict = self._revalidate(goal, approval, reduced)
        if verdict.denied:
            reasons = "; ".join(r.message for r in verdict.reasons if r.tier is RiskTier.DENY)
            raise DeskError(
                422, "DROP_DENIED", f"without those items the order breaks the brand's policies: {reasons}"
            )
        needs_staff = verdict.approver == "staff" and approval.approver != "staff"
        if stricter(verdict.tier, approval.tier) is not approval.tier or needs_staff:
            raise DeskError(
                422, "DROP_NEEDS_NEW_APPROVAL", "without those items the order needs a different approval"
            )
        return reduced, verdict

    def _revalidate(self, goal: GoalRecord, approval: Approval, plan: Plan) -> Verdict:
        # Imported on use: only a reduced plan needs them, and the policy engine is slow to load,
        # which every approval page's cold start would otherwise pay for.
        from cartpilot.plans.validation import ValidationInput, validate_plan

        profile = self._users.get(goal.userId)
        if profile is None:
            raise DeskError(409, "NO_PROFILE", "the shopper's profile is gone")
        # The same checks the validator ran on the original plan, with the price snapshot it used:
        # the reduced plan buys a subset of those items.
        snapshot = goal.priceCheck if goal.priceCheck and goal.priceCheck.planId == approval.planId else None
        current_items = snapshot.items if snapshot is not None else []
        now = self._clock()
        recent = self._counters.recent_activity(goal.userId, now=now, excluding=goal.goalId)
        return validate_plan(
            ValidationInput(
                plan=plan,
                brand=self._brand,
                profile=profile,
                current_items=current_items,
                today=now.date(),
                recent=recent,
                context=goal.context,
                # Checked for the original plan's lines; the reduced plan's are a subset of them.
                price_check=snapshot.model_copy(update={"planId": plan.planId}) if snapshot else None,
            )
        )

    def _approve(
        self,
        approval: Approval,
        link: LinkParams,
        original: Plan,
        approved: Plan,
        verdict: Verdict | None,
        dropped: list[DroppedStep],
        decider: str,
    ) -> ApprovalView:
        approved_hash = approved.plan_hash()
        self._hold_limits(approval, approved)
        try:
            decided = self._approvals.decide(
                approval.approvalId,
                ApprovalStatus.APPROVED,
                decided_at=self._now_iso(),
                decided_by=decider,
                approved_plan_hash=approved_hash,
                dropped=dropped,
            )
        except AlreadyDecided as already:
            if already.approval.status is not ApprovalStatus.APPROVED:
                # A racing rejection won after this request re-held the limits: give them back again.
                release_for_goal(
                    approval.goalId, counters=self._counters, ledger=self._ledger,
                    actor="approval", why="approval rejected", at=self._clock(),
                )  # fmt: skip
            return self._view(already.approval, link, outcome="already-decided")
        goal_id = approval.goalId
        fields: dict[str, Any] = {
            "approvedPlanHash": approved_hash,
            "approval": self._goal_approval(decided),
        }
        if verdict is not None:
            fields.update(plan=approved, planHash=approved_hash, verdict=verdict)
        self._move_goal(decided, **fields)
        actor = f"approver:{decider}"
        if verdict is not None:
            self._ledger.note(
                goal_id,
                actor=actor,
                event="plan.reduced",
                plan_hash=approved_hash,
                detail={
                    "approvalId": decided.approvalId,
                    "fromPlanId": original.planId,
                    "fromPlanHash": approval.planHash,
                    "dropped": [step.model_dump(mode="json") for step in dropped],
                    "tier": verdict.tier.value,
                    **signed_plan_detail(goal_id, approved, self._signer),
                },
            )
        self._ledger.note(
            goal_id,
            actor=actor,
            event="approval.approved",
            plan_hash=approved_hash,
            detail={
                "approvalId": decided.approvalId,
                "tier": decided.tier.value,
                "dropped": [step.stepId for step in dropped],
                **signed_plan_detail(goal_id, approved, self._signer),
            },
        )
        decided = self._deliver(decided, fresh=True)
        logger.info(
            "approval decided",
            extra={"approvalId": decided.approvalId, "goalId": goal_id, "decision": "approved",
                   "tier": decided.tier.value, "dropped": [step.stepId for step in dropped]},
        )  # fmt: skip
        return _delivery_told(self._view(decided, link, outcome="approved"))

    def _hold_limits(self, approval: Approval, approved: Plan) -> None:
        """Approval re-checks the daily limits: the goal's hold (taken at validation) must still fit,
        at the approved total (lower when the approver left something out)."""
        try:
            reserve_for_goal(
                approval.goalId, approved.userId, approved.summary.total, brand=self._brand,
                counters=self._counters, ledger=self._ledger, actor=f"approver:{approval.approver}",
                now=self._clock(), plan_hash=approved.plan_hash(),
            )  # fmt: skip
        except LimitReached as exc:
            raise DeskError(
                409, "LIMIT_REACHED", "the shopper's other orders today leave no room for this one"
            ) from exc

    def _reject(self, approval: Approval, link: LinkParams, decider: str) -> ApprovalView:
        try:
            decided = self._approvals.decide(
                approval.approvalId,
                ApprovalStatus.REJECTED,
                decided_at=self._now_iso(),
                decided_by=decider,
            )
        except AlreadyDecided as already:
            return self._view(already.approval, link, outcome="already-decided")
        self._move_goal(decided, approval=self._goal_approval(decided))
        self._ledger.note(
            decided.goalId,
            actor=f"approver:{decider}",
            event="approval.rejected",
            plan_hash=decided.planHash,
            detail={"approvalId": decided.approvalId, "tier": decided.tier.value},
        )
        metrics.add_metric(name="ApprovalRejections", unit="Count", value=1)
        release_for_goal(
            decided.goalId, counters=self._counters, ledger=self._ledger,
            actor=f"approver:{decided.approver}", why="approval rejected", at=self._clock(),
        )  # fmt: skip
        decided = self._deliver(decided, fresh=True)
        logger.info(
            "approval decided",
            extra={"approvalId": decided.approvalId, "goalId": decided.goalId, "decision": "rejected"},
        )
        return _delivery_told(self._view(decided, link, outcome="rejected"))

    def _move_goal(self, decided: Approval, **fields: Any) -> None:
        """Records the decision on the goal, only while it still waits and still holds the plan shown."""
        try:
            self._ledger.store.update(
                decided.goalId,
                status=GoalStatus.AWAITING_APPROVAL,
                updated_at=self._now_iso(),
                condition_plan_hash=decided.planHash,
                **fields,
            )
        except InvalidTransition as exc:
            goal = self._ledger.store.require(decided.goalId)
            if goal.status is not GoalStatus.AWAITING_APPROVAL:
                self._too_late(decided)
            # The plan was replaced while the decision was being recorded: never resume with it.
            self._ledger.note(
                decided.goalId,
                actor="approval",
                event="approval.plan-changed",
                plan_hash=goal.planHash,
                detail={"approvalId": decided.approvalId, "approvedPlanHash": decided.planHash},
            )
            # The goal no longer holds the approved plan, so the flow is told the plan changed.
            self._deliver(decided, fresh=True)
            raise DeskError(409, "PLAN_CHANGED", "the plan changed after this link was sent") from exc

    def _deliver(self, decided: Approval, *, fresh: bool = False) -> Approval:
        """Sends the recorded decision to the flow (see ``approvals.delivery``; ``fresh``: this
        request recorded it); the approval as it now stands, still ``undelivered`` when the
        engine would not take it this time."""
        delivered = self._courier.deliver(decided, fresh=fresh)
        if delivered is Delivered.TOKEN_GONE:
            self._too_late(decided)
        if delivered is Delivered.UNDELIVERED:
            logger.warning("approval decision waits for delivery", extra={"approvalId": decided.approvalId})
        return self._approvals.get(decided.approvalId) or decided

    def _too_late(self, decided: Approval) -> NoReturn:
        if not self._approvals.mark_expired(decided.approvalId, decided_at=self._now_iso()):
            # The flow took the decision after all (a concurrent sender): it stands.
            raise DeskError(409, "DECISION_DELIVERED", "the decision was already delivered; reload the page")
        # The goal may already say APPROVED (the flow timed out between that write and the resume).
        expired = decided.model_copy(update={"status": ApprovalStatus.EXPIRED})
        self._ledger.store.update(
            decided.goalId, updated_at=self._now_iso(), approval=self._goal_approval(expired)
        )
        self._ledger.note(
            decided.goalId,
            actor=f"approver:{decided.decidedBy or decided.approver}",
            event="approval.too-late",
            plan_hash=decided.planHash,
            detail={"approvalId": decided.approvalId, "decision": decided.status.value},
        )
        raise DeskError(410, "APPROVAL_EXPIRED", TOO_LATE)

    @staticmethod
    def _goal_approval(decided: Approval) -> ApprovalSummary:
        return ApprovalSummary(
            approvalId=decided.approvalId,
            status=decided.status.value,
            tier=decided.tier,
            dropped=[step.stepId for step in decided.dropped],
            decidedBy=decided.decidedBy,
        )

    def _now_iso(self) -> str:
        return self._clock().isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _verified(self, approval_id: str, link: LinkParams) -> Approval:
        approval = self._approvals.get(approval_id)
        expires_at = link.expires_at()
        if approval is None or expires_at is None:
            # An unknown id looks exactly like a forged link: nothing to learn from probing.
            logger.warning("approval link refused", extra={"approvalId": approval_id, "reason": "unknown"})
            raise DeskError(403, "LINK_INVALID", "this approval link is not valid")
        claims = LinkClaims(
            approval_id=approval_id,
            expires_at=expires_at,
            plan_hash=approval.planHash,
            approver=approval.approver,
            tier=approval.tier.value,
        )
        try:
            verify_approval_link(
                claims,
                kid=link.kid,
                sig=link.sig,
                keyring=self._keys.keyring(),
                now=int(self._clock().timestamp()),
            )
        except LinkInvalid as exc:
            logger.warning("approval link refused", extra={"approvalId": approval_id, "reason": "invalid"})
            raise DeskError(403, "LINK_INVALID", "this approval link is not valid") from exc
        except LinkExpired as exc:
            logger.warning("approval link refused", extra={"approvalId": approval_id, "reason": "expired"})
            raise DeskError(410, "LINK_EXPIRED", "this approval link has expired") from exc
        return approval

    def _plan_of(self, goal: GoalRecord, approval: Approval) -> Plan:
        """The goal's plan, provided it is the plan this approval is about (as shown, or as approved)."""
        if not isinstance(goal.plan, Plan):
            raise DeskError(409, "NO_PLAN", "the goal has no plan")
        plan = goal.plan
        # Either may be on the goal for a moment: a reduced plan replaces the shown one after the decision.
        expected = {approval.planHash, approval.approvedPlanHash or approval.planHash}
        actual = plan.plan_hash()
        if actual not in expected or goal.planHash != actual:
            raise DeskError(409, "PLAN_CHANGED", "the plan changed after this link was sent")
        return plan

    def _view(self, approval: Approval, link: LinkParams, outcome: str | None = None) -> ApprovalView:
        goal = self._ledger.store.require(approval.goalId)
        plan = self._plan_of(goal, approval)
        strong = approval.tier is RiskTier.STRONG_APPROVAL
        options: list[OptionalStep] = []
        if approval.status is ApprovalStatus.PENDING:
            for step in plan.steps:
                if not step.optional:
                    continue
                try:
                    without = reduce_plan(plan, [step.id], plan_id=plan.planId, created_at=plan.createdAt)
                except DropRefused:
                    continue
                total = without.summary.total
                options.append(
                    OptionalStep(
                        step_id=step.id,
                        items=items_of_step(plan, step),
                        cost=step.estimatedCost,
                        total_without=total,
                        phrase_without=confirmation_phrase(total) if strong else None,
                    )
                )
        return ApprovalView(
            approval=approval,
            goal=goal,
            plan=plan,
            phrase=confirmation_phrase(plan.summary.total) if strong else None,
            link=link,
            outcome=outcome,
            options=options,
            code=self._code_prompt(approval, goal),
        )
