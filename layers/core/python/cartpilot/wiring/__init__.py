"""The composition root: the one place that reads the deployment's settings and builds adapters.

Handlers ask it for what they need; core code takes its collaborators as arguments and never
looks anything up. Each factory imports its adapter when first called, so a function's cold
start loads only the adapters that function uses (the orders connector never loads the planner),
and caches what a warm container should keep. ``reset()`` forgets all of it, for tests and the
local stack, which build a fresh emulated account per run.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from cartpilot.kernel.errors import MissingSetting
from cartpilot.wiring import settings as config

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    from cartpilot.approvals.desk import ApprovalDesk
    from cartpilot.approvals.ports import ApprovalStore
    from cartpilot.approvals.step_up import StepUp
    from cartpilot.audit.public_keys import KeyRegistry
    from cartpilot.audit.snapshots import PlanSigner
    from cartpilot.audit.trail import AuditTrail
    from cartpilot.brands.activity import OrderCounters
    from cartpilot.brands.config import BrandConfig, MerchantConfig
    from cartpilot.brands.policy import BrandPolicies
    from cartpilot.brands.users import UserDirectory
    from cartpilot.commerce.ports import Catalog, CredentialProvider, Merchant
    from cartpilot.execution.executor import StepExecutor
    from cartpilot.goals.intake import GoalIntake
    from cartpilot.goals.ledger import GoalLedger
    from cartpilot.goals.ports import GoalStore, Notifier, Workflow
    from cartpilot.kernel.keyring import KeySource
    from cartpilot.planning.service import Planner
    from cartpilot.shopper_view.desk import ShopperDesk
    from cartpilot.shopper_view.links import ViewLinks


def brand() -> BrandConfig:
    # Loaded with the first request that needs the brand (YAML and its models), not at import.
    from cartpilot.brands.config import load_brand

    return load_brand(config.brand_name(), config.brands_dir())


def users() -> UserDirectory:
    from cartpilot.brands.users import directory_for

    return directory_for(brand())


def policies() -> BrandPolicies:
    from cartpilot.brands.policy import policies_for

    return policies_for(brand())


def _table(name: str) -> object:
    from cartpilot.adapters.aws import clients

    return clients.dynamodb().Table(name)


@functools.cache
def goals() -> GoalStore:
    from cartpilot.adapters.aws.goals_table import DynamoDBGoalStore

    return DynamoDBGoalStore(_table(config.settings().goals_table))


@functools.cache
def audit() -> AuditTrail:
    from cartpilot.adapters.aws import clients
    from cartpilot.adapters.aws.audit_anchors import S3AuditAnchors
    from cartpilot.adapters.aws.audit_table import DynamoDBAuditRecords
    from cartpilot.audit.trail import AuditTrail

    records = DynamoDBAuditRecords(_table(config.settings().audit_table))
    return AuditTrail(records, anchors=S3AuditAnchors(clients.s3(), _audit_bucket()), release=release_id())


@functools.cache
def release_id() -> str:
    """This deployment's release id: stamped into the environment at synth, else computed from the
    checkout (the local stack) the way the stack computes it."""
    from cartpilot.release import compute_release, stamped_release_id

    return stamped_release_id() or compute_release(brand().directory).id


def _audit_bucket() -> str:
    bucket = config.settings().audit_bucket
    if not bucket:
        # Without its anchors an audit trail could be rewritten unnoticed: refuse to write one.
        raise MissingSetting("environment variable AUDIT_BUCKET is not set")
    return bucket


@functools.cache
def plan_keys() -> KeyRegistry:
    """The published public keys of plan signatures."""
    from cartpilot.adapters.aws import clients
    from cartpilot.adapters.aws.audit_anchors import S3KeyRegistry

    return S3KeyRegistry(clients.s3(), _audit_bucket())


@functools.cache
def plan_signer() -> PlanSigner:
    """Signs plan snapshots with the plan-signing KMS key (never the approval-link key)."""
    from cartpilot.adapters.aws import clients
    from cartpilot.adapters.aws.plan_signer import KmsPlanSigner

    key_id = config.settings().plan_signing_key_id
    if not key_id:
        raise MissingSetting("environment variable PLAN_SIGNING_KEY_ID is not set")
    return KmsPlanSigner(clients.kms(), key_id, plan_keys())


@functools.cache
def ledger() -> GoalLedger:
    from cartpilot.goals.ledger import GoalLedger
    from cartpilot.wiring.notifications import notice_outbox

    return GoalLedger(goals(), audit(), notices=notice_outbox())


@functools.cache
def approvals() -> ApprovalStore:
    from cartpilot.adapters.aws.approvals_table import DynamoDBApprovalStore

    return DynamoDBApprovalStore(_table(config.settings().goals_table))


@functools.cache
def counters() -> OrderCounters:
    from cartpilot.adapters.aws.counters_table import DynamoDBOrderCounters
    from cartpilot.plans.mandate_budget import MandateReleasingCounters
    from cartpilot.wiring.mandates import mandate_budget

    name = config.settings().counters_table
    if not name:
        raise MissingSetting("environment variable COUNTERS_TABLE is not set")
    # Wherever a goal's daily hold is given back, its hold on a schedule's mandate is too.
    return MandateReleasingCounters(DynamoDBOrderCounters(_table(name)), mandate_budget())


@functools.cache
def link_keys() -> KeySource:
    from cartpilot.adapters.aws.secrets import SecretsManagerKeySource

    return SecretsManagerKeySource(config.settings().link_signing_secret_id)


@functools.cache
def view_link_keys() -> KeySource:
    """The shopper view links' own key ring (never the approval-link ring)."""
    from cartpilot.adapters.aws.secrets import SecretsManagerKeySource

    return SecretsManagerKeySource(config.settings().view_link_secret_id)


@functools.cache
def notifier() -> Notifier:
    from cartpilot.adapters.aws import clients
    from cartpilot.adapters.aws.notifications import SnsNotifier
    from cartpilot.wiring.notifications import shopper_channels

    topic = config.settings().notify_topic_arn
    if topic is None:
        raise MissingSetting("environment variable NOTIFY_TOPIC_ARN is not set")
    # The shopper's channel: the topic, then email where the brand has a verified sender.
    return shopper_channels(SnsNotifier(topic, clients.sns()))


@functools.cache
def staff_notifier() -> Notifier:
    """The brand's staff channel (its own SNS topic), for staff-only approval links."""
    from cartpilot.adapters.aws import clients
    from cartpilot.adapters.aws.notifications import SnsNotifier

    topic = config.settings().staff_topic_arn
    if topic is None:
        raise MissingSetting("environment variable STAFF_TOPIC_ARN is not set")
    return SnsNotifier(topic, clients.sns())


@functools.cache
def workflow() -> Workflow:
    from cartpilot.adapters.aws import clients
    from cartpilot.adapters.aws.workflow import StepFunctionsWorkflow

    arn = config.settings().state_machine_arn
    if arn is None:
        raise MissingSetting("environment variable STATE_MACHINE_ARN is not set")
    return StepFunctionsWorkflow(clients.stepfunctions(), arn, config.settings().undo_state_machine_arn)


def approval_base_url() -> str:
    base_url = config.settings().approval_base_url
    if base_url is None:
        raise MissingSetting("environment variable APPROVAL_BASE_URL is not set")
    return base_url


@functools.cache
def idempotency_store(purpose: str) -> DynamoDBPersistenceLayer:
    """One persistence layer per purpose (Powertools keeps the first config a layer sees)."""
    from cartpilot.adapters.aws.idempotency import persistence_layer

    return persistence_layer(config.settings().idempotency_table)


def merchant(merchant_id: str | None = None) -> Merchant:
    """The brand's merchant with this id (brand.yaml ``merchants``; default: the first), kept warm."""
    from cartpilot.wiring.merchants import merchant_for

    return merchant_for(brand(), merchant_id)


def credential_providers() -> dict[str, CredentialProvider]:
    """Payment handler name -> the provider that funds it, as the brand's ``paymentHandlers`` say."""
    from cartpilot.wiring.merchants import credential_providers_for

    return credential_providers_for(brand())


def merchant_config(merchant_id: str | None = None) -> MerchantConfig:
    """A merchant as brand.yaml lists it; the default one with the deployment's URL and feed overrides."""
    listed = brand().merchant(merchant_id)
    if listed.id != brand().merchant().id:
        return listed
    url, feed = config.merchant_location()
    overrides = {"url": url, "feed": feed}
    return listed.model_copy(update={name: value for name, value in overrides.items() if value})


def products(merchant_id: str | None = None) -> Catalog:
    """Where a merchant's products are described: its catalog where it offers lookup, else the
    brand's product feed for it. A merchant with neither is refused by name."""
    from cartpilot.commerce.errors import MerchantRejected
    from cartpilot.commerce.platform_profile import CATALOG_LOOKUP
    from cartpilot.planning.setup import feed_for

    seller = merchant(merchant_id)
    if seller.profile().offers(CATALOG_LOOKUP):
        return seller.catalog
    listed = merchant_config(merchant_id)
    feed = feed_for(listed, brand())
    if feed is None:
        raise MerchantRejected(
            f"merchant {listed.id} offers no catalog and brand.yaml names no product feed for it",
            code="catalog_unsupported",
        )
    return feed


def planner() -> Planner:
    """The brand's configured planner (rules, or a model with the rules planner as fallback)."""
    from cartpilot.planning.setup import configured_planner, storefront_source

    # The brand's first merchant by default; a goal naming another (context.merchantId) plans there.
    return configured_planner(
        brand(),
        merchant(),
        merchant_config=merchant_config(),
        environ=config.llm_environment(),
        elsewhere=storefront_source(brand(), lambda merchant_config: merchant(merchant_config.id)),
    )


def step_executor() -> StepExecutor:
    from cartpilot.execution.executor import StepExecutor
    from cartpilot.plans.reservations import LimitKeeper
    from cartpilot.wiring.rollout import rollout_gate

    return StepExecutor(
        ledger=ledger(),
        merchants=merchant,
        users=users(),
        credentials=credential_providers(),
        price_tolerance_percent=brand().priceTolerancePercent,
        limits=LimitKeeper(brand=brand(), counters=counters(), ledger=ledger()),
        rollout=rollout_gate(),
    )


def intake() -> GoalIntake:
    from cartpilot.goals.intake import GoalIntake
    from cartpilot.wiring.rollout import rollout_gate

    return GoalIntake(
        ledger=ledger(), workflow=workflow(), brand=brand(), users=users(), rollout=rollout_gate()
    )


def desk() -> ApprovalDesk:
    from cartpilot.approvals.desk import ApprovalDesk

    return ApprovalDesk(
        ledger=ledger(),
        approvals=approvals(),
        keys=link_keys(),
        workflow=workflow(),
        brand=brand(),
        users=users(),
        counters=counters(),
        signer=plan_signer(),
        step_up=step_up(),
    )


@functools.cache
def step_up() -> StepUp:
    """One-time codes for approvals that need them: state beside the approvals, SMS over SNS."""
    from cartpilot.adapters.aws import clients
    from cartpilot.adapters.aws.sms import SnsSmsSender
    from cartpilot.adapters.aws.step_up_table import DynamoDBStepUpStore
    from cartpilot.approvals.step_up import StepUp

    return StepUp(
        store=DynamoDBStepUpStore(_table(config.settings().goals_table)),
        keys=link_keys(),
        sender=SnsSmsSender(clients.sns()),
    )


def view_links() -> ViewLinks:
    """Signs the shopper's view links (receipts, outcome notices, ``GET /goals/{id}``) with their own keys."""
    from cartpilot.shopper_view.links import ViewLinks

    return ViewLinks(
        keys=view_link_keys(), base_url=approval_base_url(), ttl_seconds=brand().shopperViewTtlSeconds
    )


def shopper_desk() -> ShopperDesk:
    from cartpilot.shopper_view.desk import ShopperDesk
    from cartpilot.shopper_view.schedules import GoalSchedules
    from cartpilot.wiring.schedules import schedule_clock, schedule_store

    schedules = GoalSchedules(schedule_store, clock=schedule_clock)
    return ShopperDesk(ledger=ledger(), keys=view_link_keys(), workflow=workflow(), schedules=schedules)


def reset() -> None:
    """Forget every cached setting, client, adapter, merchant, key and brand file."""
    from aws_lambda_powertools.utilities import parameters

    from cartpilot.adapters.aws import clients
    from cartpilot.brands.config import load_brand
    from cartpilot.brands.policy import reset_policy_cache
    from cartpilot.brands.users import reset_directories
    from cartpilot.planning.setup import reset_providers
    from cartpilot.wiring.mandates import reset_mandates
    from cartpilot.wiring.merchants import reset_merchant_cache
    from cartpilot.wiring.notifications import reset_notifications
    from cartpilot.wiring.orders import reset_orders
    from cartpilot.wiring.rollout import reset_rollout
    from cartpilot.wiring.schedules import reset_schedules
    from cartpilot.wiring.signing import reset_signing

    parameters.clear_caches()  # type: ignore[no-untyped-call]  # Powertools leaves it unannotated
    config.reset_settings()
    clients.reset_clients()
    for factory in (
        goals,
        audit,
        release_id,
        ledger,
        approvals,
        step_up,
        counters,
        link_keys,
        view_link_keys,
        plan_keys,
        plan_signer,
        notifier,
        staff_notifier,
        workflow,
        idempotency_store,
    ):
        factory.cache_clear()
    reset_merchant_cache()
    reset_orders()
    reset_signing()
    reset_schedules()
    reset_mandates()
    reset_notifications()
    reset_rollout()
    load_brand.cache_clear()
    reset_directories()
    reset_policy_cache()
    reset_providers()
