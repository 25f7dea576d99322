"""The HTTP API: goals for API clients, approval pages for approvers, CartPilot's UCP profile for
merchants, and the OpenAPI document."""

import re
from html import escape
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Header, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from cartpilot import wiring
from cartpilot.approvals.model import DecisionRequest
from cartpilot.audit.public_keys import PlanSignatureVerifier, published_keys
from cartpilot.brands.access import ApiClient, CallerRefused, client_for, staff_member_for
from cartpilot.goals.intake import IntakeError
from cartpilot.goals.model import GoalAccepted, GoalRequest
from cartpilot.goals.ownership import goal_of_client
from cartpilot.goals.undo import UndoRefused, request_undo
from cartpilot.goals.views import audit_view, goal_view
from cartpilot.kernel.errors import ErrorBody
from cartpilot.kernel.observability import logger, metrics, tracer
from cartpilot.kernel.request_body import BodyRefused, body_text, read_json

if TYPE_CHECKING:
    from cartpilot.approvals.desk import ApprovalView, DeskError

# The approval desk and the page templates (Jinja2) load with the first approval request:
# goal requests, the bulk of this function's traffic, never need them.

# Bodies are parsed with bounded nesting and integer size: a hostile body is a 400, not a 5xx.
app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=read_json)
app.enable_swagger(path="/_docs", title="CartPilot API", version="1")

_SUBMISSION_CONFIG = IdempotencyConfig(
    # Keyed by client: two clients' keys never meet, and a client's retry finds its own goal.
    event_key_jmespath="[clientId, idempotencyKey]",
    payload_validation_jmespath="fingerprint",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=24 * 3600,
)


def _error(status: int, code: str, message: str) -> Response[dict[str, Any]]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": {"code": code, "message": message}},
    )


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[dict[str, Any]]:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg')}"
        for error in exc.errors()
    )
    return _error(422, "INVALID_REQUEST", problems or "the request is not valid")


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_content_type(exc: RequestUnsupportedContentType) -> Response[dict[str, Any]]:
    return _error(415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json")


@app.not_found
def _no_such_route(exc: Exception) -> Response[Any]:
    if app.current_event.path.startswith(("/approvals/", "/staff/approvals/")):
        from cartpilot.approvals.desk import DeskError

        return _error_page(DeskError(404, "NOT_FOUND", "there is no such page"))
    return _error(404, "NOT_FOUND", "no such route")


@app.exception_handler([BodyRefused, UnicodeDecodeError])
def _unreadable_body(exc: Exception) -> Response[Any]:
    refused = (
        exc
        if isinstance(exc, BodyRefused)
        else BodyRefused("BODY_NOT_UTF8", "the request body must be UTF-8 text")
    )
    logger.info("request body refused", extra={"code": refused.code})
    if app.current_event.path.startswith(("/approvals/", "/staff/approvals/")):
        from cartpilot.approvals.desk import DeskError

        return _error_page(DeskError(refused.status, refused.code, refused.message))
    return _error(refused.status, refused.code, refused.message)


@app.exception_handler(CallerRefused)
def _caller_refused(exc: CallerRefused) -> Response[dict[str, Any]]:
    logger.warning("caller refused", extra={"code": exc.code})
    return _error(exc.status, exc.code, exc.message)


def _caller() -> str | None:
    """The IAM principal that signed the request, as API Gateway passes it on (IAM routes only)."""
    return app.current_event.request_context.identity.user_arn


def _client() -> ApiClient:
    """The brand's API client making this request; ``CallerRefused`` (403) for any other caller."""
    return client_for(wiring.brand().apiClients, _caller())


def _goal_not_found(goal_id: str) -> Response[dict[str, Any]]:
    return _error(404, "GOAL_NOT_FOUND", f"no goal {goal_id}")


def _json_response(description: str, model: type) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": model}}}


@app.post(
    "/goals",
    responses={
        202: _json_response("The goal was accepted; its order flow has started", GoalAccepted),
        400: _json_response("The Idempotency-Key header is missing", ErrorBody),
        403: _json_response("The caller is not an API client, or may not act for this user", ErrorBody),
        422: _json_response("The body is invalid, or the key was used with another body", ErrorBody),
    },
)
@tracer.capture_method
def submit_goal(
    request: GoalRequest, idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None
) -> Response[dict[str, Any]]:
    if not idempotency_key or len(idempotency_key) > 255:
        return _error(400, "IDEMPOTENCY_KEY_REQUIRED", "send an Idempotency-Key header (1-255 characters)")
    client = _client()

    @idempotent_function(
        data_keyword_argument="submission",
        persistence_store=wiring.idempotency_store("goal-submission"),
        config=_SUBMISSION_CONFIG,
    )
    def submit_once(submission: dict[str, Any]) -> dict[str, Any]:
        accepted = wiring.intake().submit(
            GoalRequest.model_validate(submission["request"]), submission["idempotencyKey"], client=client
        )
        return accepted.model_dump(mode="json")

    submission = {
        "clientId": client.id,
        "userId": request.userId,
        "idempotencyKey": idempotency_key,
        "fingerprint": request.fingerprint(),
        "request": request.model_dump(mode="json"),
    }
    try:
        accepted = submit_once(submission=submission)
    except IdempotencyValidationError:
        return _error(422, "IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with a different request")
    except IdempotencyAlreadyInProgressError:
        return _error(
            409, "REQUEST_IN_PROGRESS", "a request with this Idempotency-Key is still being processed"
        )
    except IntakeError as exc:
        return _error(exc.status, exc.code, exc.message)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=accepted)


@app.get("/goals/<goal_id>")
@tracer.capture_method
def get_goal(goal_id: str) -> Response[dict[str, Any]]:
    goal = goal_of_client(wiring.goals(), goal_id, _client())
    if goal is None:
        return _goal_not_found(goal_id)
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=goal_view(goal).model_dump(mode="json"),
    )


@app.get("/goals/<goal_id>/audit")
@tracer.capture_method
def get_audit(goal_id: str) -> Response[dict[str, Any]]:
    ledger = wiring.ledger()
    goal = goal_of_client(ledger.store, goal_id, _client())
    if goal is None:
        return _goal_not_found(goal_id)
    view = audit_view(goal, ledger, PlanSignatureVerifier(wiring.plan_keys().all()))
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=view.model_dump(mode="json")
    )


@app.get("/audit/keys")
@tracer.capture_method
def get_audit_keys() -> Response[dict[str, Any]]:
    """The public keys of every key that signed a plan snapshot: what ``cartpilot audit --verify`` checks with."""
    keys = published_keys(wiring.plan_keys())
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=keys.model_dump(mode="json")
    )


@app.post("/goals/<goal_id>/undo")
@tracer.capture_method
def undo_goal(goal_id: str) -> Response[dict[str, Any]]:
    """Inside the undo window: cancel and refund the order; the goal ends UNDONE. Twice is harmless."""
    client = _client()
    if goal_of_client(wiring.goals(), goal_id, client) is None:
        return _goal_not_found(goal_id)
    try:
        result = request_undo(
            goal_id, ledger=wiring.ledger(), workflow=wiring.workflow(), actor=f"client:{client.id}"
        )
    except UndoRefused as exc:
        return _error(exc.status, exc.code, exc.message)
    return Response(
        status_code=202, content_type=content_types.APPLICATION_JSON, body=result.model_dump(mode="json")
    )


def _page(status: int, html: str, images_from: list[str] | None = None) -> Response[str]:
    # No scripts at all; images only from the merchant origins the plan's items name.
    images = " ".join(["'self'", "data:", *(images_from or [])])
    return Response(
        status_code=status,
        content_type="text/html; charset=utf-8",
        body=html,
        headers={
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": f"default-src 'none'; style-src 'unsafe-inline'; img-src {images}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        },
    )


def _approval_page(
    status: int, view: "ApprovalView", error: str | None = None, dropped: list[str] | None = None
) -> Response[str]:
    from cartpilot.approvals.page import image_origins, render_approval_page

    # Relative to the page's own URL: behind API Gateway that URL carries the stage ("/v1/..."),
    # which the event's path does not, so an absolute path would post past the API.
    page = render_approval_page(
        view, wiring.brand(), action_url=view.approval.approvalId, error=error, dropped=dropped or []
    )
    if status == 200 and view.undelivered:
        status = 202  # recorded, not yet taken by the flow: opening the link again sends it
    return _page(status, page, image_origins(view))


def _error_page(exc: "DeskError") -> Response[str]:
    return _page(
        exc.status,
        f"<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>Approval</title><p data-code='{exc.code}'>{escape(exc.message)}</p>",
    )


def _canonical_approval_url(
    resolver: APIGatewayRestResolver, next_middleware: NextMiddleware
) -> Response[Any]:
    """``/approvals/{id}/`` is served by the same route; its page would post to ``{id}/{id}``.
    308 keeps the method and body, so a decision posted there is decided at the canonical URL."""
    from cartpilot.approvals.urls import NoSuchPage, canonical_location

    event = resolver.current_event
    try:
        location = canonical_location(event.path, event.multi_value_query_string_parameters)
    except NoSuchPage:
        from cartpilot.approvals.desk import DeskError

        return _error_page(DeskError(404, "NOT_FOUND", "there is no such page"))
    if location is None:
        return next_middleware(resolver)
    return Response(status_code=308, body="", headers={"Location": location, "Cache-Control": "no-store"})


app.use(middlewares=[_canonical_approval_url])


@app.get("/approvals/<approval_id>")
@tracer.capture_method
def open_approval(
    approval_id: str,
    exp: Annotated[str, Query()] = "",
    kid: Annotated[str, Query()] = "",
    sig: Annotated[str, Query()] = "",
) -> Response[str]:
    return _open(approval_id, exp, kid, sig)


def _open(approval_id: str, exp: str, kid: str, sig: str, staff_member: str | None = None) -> Response[str]:
    """The page of the public route, or (with ``staff_member``) of the staff route."""
    from cartpilot.approvals.desk import DeskError, LinkParams

    try:
        view = wiring.desk().open(
            approval_id, LinkParams(exp=exp, kid=kid, sig=sig), staff_member=staff_member
        )
    except DeskError as exc:
        return _error_page(exc)
    return _approval_page(200, view)


# Fields a decision may repeat: steps to leave out (API clients), or, from the page's form,
# the optional steps offered and the ones still ticked (an unticked box sends nothing).
_STEP_LISTS = ("drop", "offered", "keep")
_STEP_ID = re.compile(r"s[0-9]{1,2}")


def _decision_fields(event: Any) -> tuple[dict[str, Any], dict[str, list[str]]]:
    content_type = (event.headers.get("content-type") or event.headers.get("Content-Type") or "").lower()
    fields: dict[str, Any] = {}
    lists: dict[str, list[str]] = {name: [] for name in _STEP_LISTS}
    if content_type.startswith("application/json"):
        body = event.json_body or {}
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        for name, value in body.items():
            if name in _STEP_LISTS:
                lists[name] = [str(v) for v in value] if isinstance(value, list) else [str(value)]
            else:
                fields[name] = value
    else:
        text = body_text(event.body, is_base64_encoded=event.is_base64_encoded)
        for name, values in parse_qs(text, keep_blank_values=True).items():
            if name in _STEP_LISTS:
                lists[name] = values
            else:
                fields[name] = values[-1]
    for name, value in (event.query_string_parameters or {}).items():
        fields.setdefault(name, value)
    if any(len(values) > 10 or not all(_STEP_ID.fullmatch(v) for v in values) for values in lists.values()):
        raise ValueError("step ids look like s1, s2, …")
    return fields, lists


@app.post("/approvals/<approval_id>")
@tracer.capture_method
def decide_approval(approval_id: str) -> Response[str]:
    return _decide(approval_id)


def _decide(approval_id: str, staff_member: str | None = None) -> Response[str]:
    """A decision from the public route, or (with ``staff_member``) from the staff route."""
    from cartpilot.approvals.desk import DeskError, LinkParams

    try:
        fields, lists = _decision_fields(app.current_event)
        decision = DecisionRequest.model_validate(fields)
    except (ValidationError, ValueError):
        return _error_page(
            DeskError(
                422,
                "INVALID_DECISION",
                "send exp, kid, sig and decision=approve|reject (and phrase, drop=<step id> when needed)",
            )
        )
    drop = sorted(set(lists["drop"]) | (set(lists["offered"]) - set(lists["keep"])))
    link = LinkParams(exp=decision.exp, kid=decision.kid, sig=decision.sig)
    desk = wiring.desk()
    try:
        view = desk.decide(
            approval_id, link, decision.decision, decision.phrase, drop, staff_member=staff_member
        )
    except DeskError as exc:
        if exc.status != 422:
            return _error_page(exc)
        try:
            reopened_view = desk.open(approval_id, link, staff_member=staff_member)
            return _approval_page(422, reopened_view, error=exc.message, dropped=drop)
        except DeskError as reopened:
            return _error_page(reopened)
    return _approval_page(200, view)


def _staff_member() -> str:
    """The id of the brand's staff member who signed this request; ``CallerRefused`` otherwise."""
    return staff_member_for(wiring.brand().staff, _caller()).id


@app.get("/staff/approvals/<approval_id>")
@tracer.capture_method
def open_staff_approval(
    approval_id: str,
    exp: Annotated[str, Query()] = "",
    kid: Annotated[str, Query()] = "",
    sig: Annotated[str, Query()] = "",
) -> Response[str]:
    """A staff-only approval's page, for the brand's staff (IAM-signed; see approvals/staff.py)."""
    from cartpilot.approvals.desk import DeskError

    try:
        staff_member = _staff_member()
    except CallerRefused as exc:
        return _error_page(DeskError(exc.status, exc.code, exc.message))
    return _open(approval_id, exp, kid, sig, staff_member)


@app.post("/staff/approvals/<approval_id>")
@tracer.capture_method
def decide_staff_approval(approval_id: str) -> Response[str]:
    """A staff member's decision on a staff-only approval; the audit names the member."""
    from cartpilot.approvals.desk import DeskError

    try:
        member = _staff_member()
    except CallerRefused as exc:
        return _error_page(DeskError(exc.status, exc.code, exc.message))
    return _decide(approval_id, staff_member=member)


def _platform_profile(version: str) -> Response[dict[str, Any]]:
    from cartpilot.commerce.platform_profile import PROFILE_CACHE_CONTROL
    from cartpilot.commerce.signing_keys import SigningKeysMissing
    from cartpilot.wiring.signing import platform_profile_document

    try:
        document = platform_profile_document(version)
    except SigningKeysMissing as exc:
        logger.error("the UCP profile has no signing keys to publish", extra={"reason": str(exc)})
        return Response(
            status_code=503,
            content_type=content_types.APPLICATION_JSON,
            body={"error": {"code": "PROFILE_UNAVAILABLE", "message": "the profile is not published yet"}},
            headers={"Cache-Control": "no-store", "Retry-After": "60"},
        )
    # overview.md, "Hosting": public, cacheable for at least a minute, never redirected.
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=document,
        headers={"Cache-Control": PROFILE_CACHE_CONTROL},
    )


@app.get("/.well-known/ucp")
@tracer.capture_method
def ucp_platform_profile() -> Response[dict[str, Any]]:
    """CartPilot's UCP platform profile (2026-04-08), the one our UCP-Agent header names. Public."""
    return _platform_profile("2026-04-08")


@app.get("/.well-known/ucp/2026-01-11")
@tracer.capture_method
def ucp_platform_profile_2026_01_11() -> Response[dict[str, Any]]:
    """The 2026-01-11 leaf profile, for merchants that speak that version. Public."""
    return _platform_profile("2026-01-11")


@app.get("/openapi.json")
def openapi_document() -> Response[str]:
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=app.get_openapi_json_schema(title="CartPilot API", version="1"),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    _SUBMISSION_CONFIG.register_lambda_context(context)
    return app.resolve(event, context)
