"""Changing a brand's rollout: the one way the CLI, the guard function and operators do it.

Every change is audited on the brand's rollout chain (subject ``rollout:<brand>`` in the audit
trail, the same hash-chained, anchored trail goals and schedules use): who, from what, to what, why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cartpilot.audit.trail import AuditTrail
from cartpilot.rollout.model import RolloutSettings, RolloutStage
from cartpilot.rollout.ports import RolloutStore

ROLLOUT_CHANGED = "rollout.changed"
MAX_REASON_LENGTH = 500


class RolloutChangeRefused(ValueError):
    """The change asked for is not one (no reason given, nothing to change, a bad value)."""


def audit_subject(brand: str) -> str:
    """The audit chain of a brand's rollout changes."""
    return f"rollout:{brand}"


@dataclass(frozen=True)
class RolloutChange:
    # None: the document in force could not be read (garbled by hand, a bad deployment) and was replaced.
    before: RolloutSettings | None
    after: RolloutSettings

    @property
    def changed(self) -> bool:
        return self.before != self.after


def set_stage(
    store: RolloutStore,
    audit: AuditTrail,
    *,
    brand: str,
    actor: str,
    reason: str,
    stage: RolloutStage | str | None = None,
    pilot_users: list[str] | None = None,
    pilot_percent: int | None = None,
    kill_switch: bool | None = None,
) -> RolloutChange:
    """Applies the change (what is None stays as it is), then audits it.

    Written before audited: a change that is in force but not yet audited is retried by the caller
    (the write is idempotent); the other order could audit a change that never happened. A call
    that changes nothing is still audited when it was asked for (a guard confirming read-only)."""
    reason = reason.strip()
    if not reason:
        raise RolloutChangeRefused("a rollout change needs a reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise RolloutChangeRefused(f"the reason is longer than {MAX_REASON_LENGTH} characters")
    try:
        before: RolloutSettings | None = store.read()
    except Exception as unreadable:  # whatever the store or the schema raised
        # The gates already fail closed on an unreadable document; a change that names the stage
        # replaces it (audited with no "from"), so an operator or the guard can always recover.
        if stage is None:
            raise RolloutChangeRefused(
                f"the rollout document cannot be read ({type(unreadable).__name__}): set a stage to replace it"
            ) from unreadable
        before = None
    update: dict[str, Any] = {}
    if stage is not None:
        update["stage"] = RolloutStage(stage)
    if pilot_users is not None:
        update["pilotUsers"] = pilot_users
    if pilot_percent is not None:
        update["pilotPercent"] = pilot_percent
    if kill_switch is not None:
        update["killSwitch"] = kill_switch
    try:
        base = before.model_dump() if before is not None else {}
        after = RolloutSettings.model_validate(base | update)
    except ValueError as exc:
        raise RolloutChangeRefused(str(exc)) from exc
    store.write(after, actor=actor, reason=reason)
    audit.append(
        audit_subject(brand),
        actor=actor,
        event=ROLLOUT_CHANGED,
        status=after.stage.value,
        detail={
            "from": before.model_dump(mode="json") if before is not None else None,
            "to": after.model_dump(mode="json"),
            "reason": reason,
        },
    )
    return RolloutChange(before=before, after=after)


def recent_changes(audit: AuditTrail, *, brand: str, limit: int = 10) -> list[dict[str, Any]]:
    """The newest rollout changes of the brand, oldest first."""
    records = [r for r in audit.records(audit_subject(brand)) if r.event == ROLLOUT_CHANGED]
    return [
        {
            "at": r.at,
            "actor": r.actor,
            "from": r.detail.get("from"),
            "to": r.detail.get("to"),
            "reason": r.detail.get("reason"),
        }
        for r in records[-limit:]
    ]
