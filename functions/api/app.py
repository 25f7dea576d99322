"""The HTTP API: goals for API clients, approval pages for approvers, CartPilot's UCP profile for
merchants, and the OpenAPI document."""

import base64
import functools
import re
import time
from collections.abc import Callable
from datetime import datetime
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
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from cartpilot import wiring
from cartpilot.brands.access import ApiClient, CallerRefused, client_for, staff_member_for
from cartpilot.goals.model import GoalAccepted
from cartpilot.goals.ownership import goal_of_client
from cartpilot.kernel.errors import ErrorBody
from cartpilot.kernel.models import build_models
from cartpilot.kernel.observability import logger, metrics, tracer
from cartpilot.kernel.request_body import BodyRefused, body_text, read_json
from cartpilot.kernel.snapstart import before_snapshot
from cartpilot.schedules.model import GoalSubmission, ScheduleAccepted, ScheduleView
from cartpilot.schedules.records import MandateExport, ScheduleAuditView, ScheduleList
from cartpilot.wiring.restore import register_restore_hooks
from cartpilot.wiring.schedules import schedule_desk

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    from cartpilot.approvals.desk import ApprovalView, DeskError
    from cartpilot.shopper_view.desk import ShopperView, ViewRefused

# What a route alone needs loads with that route's first request, not at start-up: the approval
# desk and the page templates (Jinja2), the schedule desk (SD-JWT mandates), signature checks
# (cryptography) and the idempotency layer (boto3). A SnapStart snapshot has them loaded already
# (``_load_route_modules``), so only functions started without one pay for them on first use.
_ROUTE_MODULES = (
    "aws_lambda_powertools.utilities.idempotency",
    "cartpilot.goals.intake",
    "cartpilot.goals.views",
    "cartpilot.goals.undo",
    "cartpilot.schedules.desk",
    "cartpilot.audit.public_keys",
    "cartpilot.approvals.desk",
    "cartpilot.approvals.page",
    "cartpilot.shopper_view.desk",
    "cartpilot.shopper_view.page",
)

# Bodies are parsed with bounded nesting and integer size: a hostile body is a 400, not a 5xx.
app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=read_json)
_DOCS_PATH = "/_docs"


@functools.cache
def _submission_config() -> "IdempotencyConfig":
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    return IdempotencyConfig(
        # Keyed by client: two clients' keys never meet, and a client's retry finds its own goal.
        event_key_jmespath="[clientId, idempotencyKey]",
        payload_validation_jmespath="fingerprint",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=24 * 3600,
    )


@functools.cache
def _enable_docs() -> None:
    """The Swagger UI at /_docs, set up with its first request (its OpenAPI models are heavy)."""
    app.enable_swagger(path=_DOCS_PATH, title="CartPilot API", version="1")


def _load_route_modules() -> None:
    """Everything the routes load on first use, the docs route, and every loaded model built (they
    build on first use too): for the SnapStart snapshot."""
    import importlib

    for name in _ROUTE_MODULES:
        importlib.import_module(name)
    _enable_docs()
    build_models()


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


# Routes a person opens in a browser: their errors are HTML pages, not JSON.
_PAGE_ROUTES = ("/approvals/", "/staff/approvals/", "/shoppers/")


@app.not_found
def _no_such_route(exc: Exception) -> Response[Any]:
    if app.current_event.path.startswith(_PAGE_ROUTES):
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
    if app.current_event.path.startswith(_PAGE_ROUTES):
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
        202: _json_response(
            "The goal was accepted and its order flow has started (GoalAccepted); or, with `schedule`, "
            "the schedule was stored (ScheduleAccepted: scheduleId, status SCHEDULED)",
            GoalAccepted | ScheduleAccepted,  # type: ignore[arg-type]  # a union: both answers documented
        ),
        400: _json_response("The Idempotency-Key header is missing", ErrorBody),
        403: _json_response("The caller is not an API client, or may not act for this user", ErrorBody),
        422: _json_response(
            "The body is invalid (a schedule or mandate included), or the key was used with another body",
            ErrorBody,
        ),
        503: _json_response(
            "The brand is not taking orders (rollout stage off); nothing was stored", ErrorBody
        ),
    },
)
@tracer.capture_method
def submit_goal(
    request: GoalSubmission, idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None
) -> Response[dict[str, Any]]:
    from aws_lambda_powertools.utilities.idempotency import idempotent_function
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    from cartpilot.goals.intake import IntakeError
    from cartpilot.schedules.desk import ScheduleRefused

    if not idempotency_key or len(idempotency_key) > 255:
        return _error(400, "IDEMPOTENCY_KEY_REQUIRED", "send an Idempotency-Key header (1-255 characters)")
    client = _client()
    config = _submission_config()
    # The remaining time of this invocation bounds how long an in-progress record may block a retry.
    config.register_lambda_context(app.lambda_context)

    @idempotent_function(
        data_keyword_argument="submission",
        persistence_store=wiring.idempotency_store("goal-submission"),
        config=config,
    )
    def submit_once(submission: dict[str, Any]) -> dict[str, Any]:
        submitted = GoalSubmission.model_validate(submission["request"])
        if submitted.schedule is not None:
            scheduled = schedule_desk().create(submitted, submission["idempotencyKey"], client=client)
            return scheduled.model_dump(mode="json")
        accepted = wiring.intake().submit(
            submitted.goal_request(), submission["idempotencyKey"], client=client
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
    except (IntakeError, ScheduleRefused) as exc:
        return _error(exc.status, exc.code, exc.message)
    return Response(status_code=202, content_type=content_types.APPLICATION_JSON, body=accepted)


@app.get("/goals/<goal_id>")
@tracer.capture_method
def get_goal(goal_id: str) -> Response[dict[str, Any]]:
    from cartpilot.goals.views import goal_view

    goal = goal_of_client(wiring.goals(), goal_id, _client())
    if goal is None:
        return _goal_not_found(goal_id)
    body = goal_view(goal).model_dump(mode="json")
    # The shopper's own page of the goal, for the client to hand on (the receipt carries one too).
    # Timed from the goal's last change, so the view reads the same until the goal changes.
    body["viewUrl"] = wiring.view_links().url_for(
        goal.goalId, goal.userId, since=datetime.fromisoformat(goal.updatedAt)
    )
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=body)


@app.get("/goals/<goal_id>/audit")
@tracer.capture_method
def get_audit(goal_id: str) -> Response[dict[str, Any]]:
    from cartpilot.audit.public_keys import PlanSignatureVerifier
    from cartpilot.goals.views import audit_view

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
    from cartpilot.audit.public_keys import published_keys

    keys = published_keys(wiring.plan_keys())
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=keys.model_dump(mode="json")
    )


@app.post("/goals/<goal_id>/undo")
@tracer.capture_method
def undo_goal(goal_id: str) -> Response[dict[str, Any]]:
    """Inside the undo window: cancel and refund the order; the goal ends UNDONE. Twice is harmless."""
    from cartpilot.goals.undo import UndoRefused, request_undo

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


def _schedule_response(act: Callable[[], ScheduleView]) -> Response[dict[str, Any]]:
    from cartpilot.schedules.desk import ScheduleRefused

    try:
        view = act()
    except ScheduleRefused as exc:
        return _error(exc.status, exc.code, exc.message)
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=view.model_dump(mode="json")
    )


_SCHEDULE_RESPONSES: dict[int, OpenAPIResponse] = {
    200: _json_response("The schedule, its next occurrence and every occurrence so far", ScheduleView),
    404: _json_response("No such schedule for this client", ErrorBody),
    409: _json_response("The schedule cannot make that move from its status", ErrorBody),
}


@app.get("/schedules/<schedule_id>", responses=_SCHEDULE_RESPONSES)
@tracer.capture_method
def get_schedule(schedule_id: str) -> Response[dict[str, Any]]:
    """A scheduled or recurring goal: status, next occurrence, occurrences with their goal ids."""
    client = _client()
    return _schedule_response(lambda: schedule_desk().view(schedule_id, client))


@app.get(
    "/schedules",
    responses={
        200: _json_response("The user's schedules made through this client, newest first", ScheduleList),
        403: _json_response("The caller is not an API client, or may not act for this user", ErrorBody),
        422: _json_response("userId is missing or malformed", ErrorBody),
    },
)
@tracer.capture_method
def list_schedules(
    user_id: Annotated[str, Query(alias="userId", pattern=r"^[A-Za-z0-9_\-]{1,64}$")],
) -> Response[dict[str, Any]]:
    """A shopper's schedules: only those this client made (another client's never show)."""
    from cartpilot.schedules.desk import ScheduleRefused

    client = _client()
    try:
        listed = schedule_desk().of_user(user_id, client)
    except ScheduleRefused as exc:
        return _error(exc.status, exc.code, exc.message)
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=listed.model_dump(mode="json")
    )


@app.get(
    "/schedules/<schedule_id>/audit",
    responses={
        200: _json_response(
            "The schedule's audit records, anchors and their verification", ScheduleAuditView
        ),
        404: _json_response("No such schedule for this client", ErrorBody),
    },
)
@tracer.capture_method
def get_schedule_audit(schedule_id: str) -> Response[dict[str, Any]]:
    """The schedule's own audit trail: its creation with the mandate's signature, every change since."""
    from cartpilot.audit.public_keys import PlanSignatureVerifier
    from cartpilot.schedules.desk import ScheduleRefused

    client = _client()
    verifier = PlanSignatureVerifier(wiring.plan_keys().all())
    try:
        view = schedule_desk().audit(schedule_id, client, verifier)
    except ScheduleRefused as exc:
        return _error(exc.status, exc.code, exc.message)
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=view.model_dump(mode="json")
    )


@app.get(
    "/schedules/<schedule_id>/mandate",
    responses={
        200: _json_response("The mandate as an AP2 open mandate SD-JWT (format sd-jwt)", MandateExport),
        404: _json_response("No such schedule for this client, or it has no mandate", ErrorBody),
    },
)
@tracer.capture_method
def export_schedule_mandate(schedule_id: str) -> Response[dict[str, Any]]:
    """The standing mandate, signed with the plan-signing key: verify with ``GET /audit/keys``."""
    from cartpilot.schedules.desk import ScheduleRefused

    client = _client()
    try:
        exported = schedule_desk().export_mandate(schedule_id, client)
    except ScheduleRefused as exc:
        return _error(exc.status, exc.code, exc.message)
    return Response(
        status_code=200, content_type=content_types.APPLICATION_JSON, body=exported.model_dump(mode="json")
    )


@app.post("/schedules/<schedule_id>/pause", responses=_SCHEDULE_RESPONSES)
@tracer.capture_method
def pause_schedule(schedule_id: str) -> Response[dict[str, Any]]:
    """Occurrences that fall while paused are skipped; twice is harmless."""
    client = _client()
    return _schedule_response(lambda: schedule_desk().pause(schedule_id, client))


@app.post("/schedules/<schedule_id>/resume", responses=_SCHEDULE_RESPONSES)
@tracer.capture_method
def resume_schedule(schedule_id: str) -> Response[dict[str, Any]]:
    """Runs again from the next occurrence after now; twice is harmless."""
    client = _client()
    return _schedule_response(lambda: schedule_desk().resume(schedule_id, client))


@app.delete("/schedules/<schedule_id>", responses=_SCHEDULE_RESPONSES)
@tracer.capture_method
def cancel_schedule(schedule_id: str) -> Response[dict[str, Any]]:
    """Cancels for good: nothing fires after it; twice is harmless."""
    client = _client()
    return _schedule_response(lambda: schedule_desk().cancel(schedule_id, client))


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
# A signed link's fields: the only ones a POST may take from its URL.
_LINK_FIELDS = ("exp", "kid", "sig")


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
    # Only the link may ride in the URL; the decision, the phrase and the one-time code come in the
    # body, so no access log, WAF log or browser history ever holds them.
    for name in _LINK_FIELDS:
        if name in (event.query_string_parameters or {}):
            fields.setdefault(name, event.query_string_parameters[name])
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
    from cartpilot.approvals.model import DecisionRequest

    try:
        fields, lists = _decision_fields(app.current_event)
        decision = DecisionRequest.model_validate(fields)
    except (ValidationError, ValueError):
        return _error_page(
            DeskError(
                422,
                "INVALID_DECISION",
                "send exp, kid, sig and decision=approve|reject|send-code "
                "(and phrase, otp, drop=<step id> when needed)",
            )
        )
    drop = sorted(set(lists["drop"]) | (set(lists["offered"]) - set(lists["keep"])))
    link = LinkParams(exp=decision.exp, kid=decision.kid, sig=decision.sig)
    desk = wiring.desk()
    try:
        if decision.decision == "send-code":
            view = desk.send_code(approval_id, link, staff_member=staff_member)
        else:
            view = desk.decide(
                approval_id, link, decision.decision, decision.phrase, drop,
                staff_member=staff_member, otp=decision.otp,
            )  # fmt: skip
    except DeskError as exc:
        # The page comes back with the error for what the approver can fix there (a phrase, a
        # code, waiting before another code); anything else is a page of its own.
        if exc.status not in (422, 429):
            return _error_page(exc)
        try:
            reopened_view = desk.open(approval_id, link, staff_member=staff_member)
            return _approval_page(exc.status, reopened_view, error=exc.message, dropped=drop)
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


@app.get("/shoppers/goals/<goal_id>")
@tracer.capture_method
def open_shopper_view(
    goal_id: str,
    exp: Annotated[str, Query()] = "",
    kid: Annotated[str, Query()] = "",
    sig: Annotated[str, Query()] = "",
    step: Annotated[str, Query()] = "",
) -> Response[str]:
    """The shopper's page of one goal, from the signed link in the receipt. Changes nothing."""
    from cartpilot.shopper_view.desk import ViewRefused
    from cartpilot.shopper_view.links import ViewLinkParams
    from cartpilot.shopper_view.page import CONFIRM_STEP

    try:
        view = wiring.shopper_desk().open(
            goal_id, ViewLinkParams(exp=exp, kid=kid, sig=sig), confirming=step == CONFIRM_STEP
        )
    except ViewRefused as exc:
        return _view_error_page(exc)
    return _shopper_page(200, view)


@app.post("/shoppers/goals/<goal_id>")
@tracer.capture_method
def undo_from_shopper_view(goal_id: str) -> Response[str]:
    """The confirmed undo (or return) button of the shopper's page: the link's fields plus ``confirm``."""
    from cartpilot.shopper_view.desk import ViewRefused
    from cartpilot.shopper_view.links import ViewLinkParams

    event = app.current_event
    # The link is the credential, not a cookie, so a forged cross-site form cannot carry it; a
    # browser that says the form came from another site is refused all the same.
    if (event.headers.get("sec-fetch-site") or event.headers.get("Sec-Fetch-Site") or "") == "cross-site":
        return _view_error_page(ViewRefused(403, "CROSS_SITE", "this form must be sent from its own page"))
    text = body_text(event.body, is_base64_encoded=bool(event.is_base64_encoded))
    fields = {name: values[-1] for name, values in parse_qs(text, keep_blank_values=True).items()}
    # The link may ride in the URL; the confirmation only in the body (a link alone never undoes).
    for name in _LINK_FIELDS:
        if name in (event.query_string_parameters or {}):
            fields.setdefault(name, event.query_string_parameters[name])
    link = ViewLinkParams(exp=fields.get("exp", ""), kid=fields.get("kid", ""), sig=fields.get("sig", ""))
    desk = wiring.shopper_desk()
    try:
        view = desk.undo(goal_id, link, fields.get("confirm"))
    except ViewRefused as exc:
        if exc.status in (403, 404, 410):
            return _view_error_page(exc)
        try:
            # Refused for what the order allows (closed window, no confirmation): the page says why.
            return _shopper_page(exc.status, desk.open(goal_id, link), error=exc.message)
        except ViewRefused as reopened:
            return _view_error_page(reopened)
    return _shopper_page(202, view)


def _shopper_page(status: int, view: "ShopperView", error: str | None = None) -> Response[str]:
    from cartpilot.shopper_view.page import image_origins, render_shopper_page

    return _page(status, render_shopper_page(view, wiring.brand(), error=error), image_origins(view))


def _view_error_page(exc: "ViewRefused") -> Response[str]:
    return _page(
        exc.status,
        f"<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<meta name=robots content=noindex><title>Your order</title><p data-code='{escape(exc.code)}'>{escape(exc.message)}</p>",
    )


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


@app.post("/webhooks/merchants/<merchant_id>")
@tracer.capture_method
def order_event_webhook(merchant_id: str) -> Response[dict[str, Any]]:
    """A merchant's order event (UCP order_event_webhook). Public: the merchant's signature is the
    credential, checked as its UCP version says before anything is recorded."""
    from cartpilot.orders.webhooks import WebhookRefused, receive_order_webhook
    from cartpilot.wiring import orders
    from cartpilot.wiring.settings import public_api_url

    event = app.current_event
    raw = event.body or ""
    body = base64.b64decode(raw) if event.is_base64_encoded else raw.encode("utf-8")
    # What the merchant signed: the URL our profile advertised, under the public API URL.
    url = public_api_url().rstrip("/") + event.path
    try:
        accepted = receive_order_webhook(
            merchant_id,
            url=url,
            headers=dict(event.headers or {}),
            body=body,
            now=int(time.time()),
            merchants=orders.merchant_urls(),
            keys=orders.merchant_keys(),
            store=orders.order_events(),
            ledger=wiring.ledger(),
        )
    except WebhookRefused as exc:
        logger.info("order event refused", extra={"merchantId": merchant_id, "code": exc.code})
        return _error(exc.status, exc.code, exc.message)
    logger.info(
        "order event received",
        extra={"merchantId": merchant_id, "goalId": accepted.goalId, "duplicate": accepted.duplicate},
    )
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=accepted.body())


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
    if event.get("path") == _DOCS_PATH:
        _enable_docs()
    return app.resolve(event, context)


# A SnapStart environment refreshes what it must not share with others restored from the same
# snapshot, and the snapshot is taken with every route's modules loaded and every model built.
register_restore_hooks()
before_snapshot(_load_route_modules)
