"""Verifying a goal's audit trail as a client: from the API's document and the published public keys
alone, in the client's own process, never taking the server's verdict for it."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from cartpilot.audit.chain import AuditAnchor, AuditRecord, ChainVerification, verify_chain
from cartpilot.audit.public_keys import PlanSignatureVerifier

_RECORDS = TypeAdapter(list[AuditRecord])
_ANCHORS = TypeAdapter(list[AuditAnchor] | None)
NO_ANCHORS = "the server sent no anchors: the records cannot be checked against their write-once copies"


def verify_audit_document(document: dict[str, Any], keys: dict[str, Any]) -> ChainVerification:
    """``document`` as ``GET /goals/{id}/audit`` returns it, ``keys`` as ``GET /audit/keys`` (or a
    pinned copy of it). The server's own ``verification`` is ignored."""
    records = _RECORDS.validate_python(document.get("records", []))
    anchors = _ANCHORS.validate_python(document.get("anchors"))
    verification = verify_chain(
        records, verifier=PlanSignatureVerifier.from_document(keys), anchors=anchors or []
    )
    if anchors is None:
        verification.problems.append(NO_ANCHORS)
        verification.valid = False
    return verification
