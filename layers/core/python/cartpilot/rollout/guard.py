"""The rollout guard: an anomaly alarm drops the brand to ``read-only`` and tells its operators.

EventBridge sends each "CloudWatch Alarm State Change" to ALARM of the anomaly alarms
(``infra/rollout.py``). The guard lowers the stage through ``set_stage`` (audited on the brand's
rollout chain, actor ``alarm:<name>``) unless it is already ``read-only`` or ``off``: then it changes
nothing, writes nothing and deploys nothing. Either way the operators get one message per alarm
event, naming the alarm and the stage; it carries no goal, shopper or order data.

EventBridge delivers at least once: a repeated event finds the brand already read-only, so it can
cost a second message, never a second change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cartpilot.audit.trail import AuditTrail
from cartpilot.kernel.observability import logger
from cartpilot.rollout.desk import set_stage
from cartpilot.rollout.model import RolloutStage
from cartpilot.rollout.ports import RolloutStore

ALARM_STATE_CHANGE = "CloudWatch Alarm State Change"
# Stages at which nothing mutating runs already: the guard leaves them as they are.
ALREADY_SAFE = frozenset({RolloutStage.READ_ONLY, RolloutStage.OFF})
# CloudWatch's state reason is a sentence about datapoints and thresholds; kept short in the audit.
MAX_REASON = 400


class NotAnAlarm(ValueError):
    """The event is not an anomaly alarm entering ALARM: nothing to do."""


class _State(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    value: str
    reason: str = ""
    timestamp: str = ""


class _Detail(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    alarmName: str = Field(min_length=1, max_length=255)
    state: _State


class AlarmStateChange(BaseModel):
    """The part of EventBridge's alarm event the guard reads."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, defer_build=True)

    source: Literal["aws.cloudwatch"]
    detail_type: Literal["CloudWatch Alarm State Change"] = Field(alias="detail-type")
    detail: _Detail


@dataclass(frozen=True)
class FiredAlarm:
    name: str
    reason: str
    at: str


def fired_alarm(event: dict[str, Any]) -> FiredAlarm:
    """The alarm that entered ALARM; ``NotAnAlarm`` for any other event or state."""
    try:
        change = AlarmStateChange.model_validate(event)
    except ValidationError as exc:
        raise NotAnAlarm(f"not a CloudWatch alarm state change ({exc.error_count()} problems)") from None
    if change.detail.state.value != "ALARM":
        raise NotAnAlarm(f"alarm {change.detail.alarmName} is {change.detail.state.value}, not ALARM")
    reason = change.detail.state.reason.strip() or "the alarm entered ALARM"
    return FiredAlarm(
        name=change.detail.alarmName, reason=reason[:MAX_REASON], at=change.detail.state.timestamp
    )


class OperatorChannel(Protocol):
    """Where the brand's operators hear about it (the stack's alarm topic on AWS)."""

    def tell(self, *, subject: str, message: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class GuardOutcome:
    alarm: str
    # None: the document in force could not be read; the guard replaced it with read-only.
    before: RolloutStage | None
    after: RolloutStage
    changed: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "alarm": self.alarm,
            "before": self.before.value if self.before is not None else None,
            "after": self.after.value,
            "changed": self.changed,
        }


def drop_to_read_only(
    alarm: FiredAlarm,
    *,
    brand: str,
    store: RolloutStore,
    audit: AuditTrail,
    operators: OperatorChannel,
) -> GuardOutcome:
    try:
        before: RolloutStage | None = store.read().stage
    except Exception:  # an unreadable document is replaced, never left to block the drop
        before = None
    changed = before is None or before not in ALREADY_SAFE
    if changed:
        set_stage(
            store,
            audit,
            brand=brand,
            actor=f"alarm:{alarm.name}",
            reason=alarm.reason,
            stage=RolloutStage.READ_ONLY,
        )
    after = RolloutStage.READ_ONLY if changed or before is None else before
    outcome = GuardOutcome(alarm=alarm.name, before=before, after=after, changed=changed)
    verb = "dropped to read-only" if changed or before is None else f"already {before.value}, left as it is"
    operators.tell(
        subject=f"CartPilot {brand}: {alarm.name} fired, rollout {verb}"[:100],
        message={
            "kind": "rollout.guard",
            "brand": brand,
            **outcome.as_dict(),
            "alarmReason": alarm.reason,
            "alarmAt": alarm.at,
            "next": "Check the alarm; raise the stage again with 'cartpilot rollout set' when it is clear.",
        },
    )
    logger.info("rollout guard", extra=outcome.as_dict())
    return outcome
