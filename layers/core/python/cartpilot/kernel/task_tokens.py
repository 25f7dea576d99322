"""Events that carry a Step Functions task token, parsed without ever quoting the token.

A task token resumes the order flow (approves an order, ends an undo window): whoever reads one in a
log can do that. Lambda's runtime logs an uncaught exception's message, and pydantic's validation
errors quote the input they refused (a missing field quotes the whole event), so the handlers that
receive a token validate their event here, with errors that name fields and error types only. Those
handlers also never log their event (``log_event=False``, whatever POWERTOOLS_LOGGER_LOG_EVENT says).
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

EventModel = TypeVar("EventModel", bound=BaseModel)


class MalformedTaskEvent(ValueError):
    """The flow sent an event this function cannot read; the message names fields, never values."""


def parse_task_event(model: type[EventModel], event: object) -> EventModel:
    try:
        return model.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(event)'}: {error['type']}"
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        )
        # ``from None``: the chained ValidationError would print the input after all.
        raise MalformedTaskEvent(f"{model.__name__} refused: {problems}") from None
