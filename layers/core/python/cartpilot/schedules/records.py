"""What a client reads of a schedule besides its status: its audit trail and its mandate as an AP2 token.

The audit trail is the schedule's own chain (keyed by the schedule id): its creation with the mandate's
signature, each pause, resume and cancel, each occurrence. It is verified like a goal's, against its
anchors; a schedule keeps no head of its own, so a record cut off the end shows only in the anchors.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from cartpilot.audit.chain import AuditAnchor, AuditRecord, ChainVerification, verify_chain
from cartpilot.schedules.model import ScheduleView

if TYPE_CHECKING:
    from cartpilot.audit.public_keys import PlanSignatureVerifier
    from cartpilot.audit.trail import AuditTrail

# A shopper's list is a page, not an export: a client with more asks per schedule.
USER_SCHEDULES_LIMIT = 100


class ScheduleAuditView(BaseModel):
    """``GET /schedules/{id}/audit``: the records in order, their anchors, and the server's verification."""

    model_config = ConfigDict(defer_build=True)

    scheduleId: str
    records: list[AuditRecord]
    anchors: list[AuditAnchor] | None = Field(
        description="what the write-once store holds for each place of the chain, read after the records"
    )
    verification: ChainVerification


class MandateExport(BaseModel):
    """``GET /schedules/{id}/mandate``: the mandate as an AP2 open mandate, an SD-JWT.

    ``token`` is the compact serialization (``application/sd-jwt``): the issuer-signed JWT and every
    disclosure, ``~``-separated. It verifies with the plan-signing public keys ``GET /audit/keys``
    publishes.
    """

    model_config = ConfigDict(defer_build=True)

    scheduleId: str
    format: Literal["sd-jwt"] = "sd-jwt"
    mediaType: Literal["application/sd-jwt"] = "application/sd-jwt"
    token: str


class ScheduleList(BaseModel):
    """``GET /schedules?userId=``: the user's schedules made through this client, newest first."""

    model_config = ConfigDict(defer_build=True)

    userId: str
    schedules: list[ScheduleView]


def schedule_audit_view(
    schedule_id: str,
    audit: AuditTrail,
    verifier: PlanSignatureVerifier | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> ScheduleAuditView:
    from cartpilot.goals.views import SETTLE_PAUSES

    records = audit.records(schedule_id)
    anchors = audit.anchors(schedule_id)
    # As for a goal: an append between the two reads leaves an anchor past the last record for the
    # moment its writer takes to insert it; read again before calling that a removal.
    for pause in SETTLE_PAUSES:
        if not anchors or max(a.seq for a in anchors) <= max((r.seq for r in records), default=0):
            break
        sleep(pause)
        records = audit.records(schedule_id)
        anchors = audit.anchors(schedule_id)
    verification = verify_chain(records, verifier=verifier, anchors=anchors)
    return ScheduleAuditView(
        scheduleId=schedule_id, records=records, anchors=anchors, verification=verification
    )
