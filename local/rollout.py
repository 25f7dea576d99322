"""The local stack's rollout flags: a file in the stack's state directory, changed over loopback.

The functions read the file on every check (``ROLLOUT_FLAGS_FILE``), so a change takes effect at
the next goal or step. Changes go through ``rollout.desk`` (audited on the brand's rollout chain);
``cartpilot rollout show|set`` reach them at ``/_local/rollout`` on the running stack, since the
audit trail lives in the stack's process.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cartpilot.rollout.desk import RolloutChangeRefused, recent_changes, set_stage
from cartpilot.rollout.file_store import FileRolloutStore
from cartpilot.rollout.model import RolloutSettings

FLAGS_FILE_NAME = "rollout-flags.json"
_CHANGE_FIELDS = {"stage", "pilotUsers", "pilotPercent", "killSwitch", "reason", "actor"}


class LocalRollout:
    def __init__(self, state_dir: Path, brand: str) -> None:
        self.store = FileRolloutStore(state_dir / FLAGS_FILE_NAME)
        self.brand = brand

    @property
    def path(self) -> Path:
        return self.store.path

    def initialise(self, settings: RolloutSettings) -> None:
        """The document the stack starts with (not a change: nothing was in force before)."""
        self.store.write(settings, actor="local", reason="local stack started")

    def show(self) -> dict[str, Any]:
        from cartpilot import wiring

        try:
            settings: dict[str, Any] | None = self.store.read().model_dump(mode="json")
            problem = None
        except Exception as unreadable:  # shown, not raised: the operator needs to see and replace it
            settings, problem = (
                None,
                f"the flags file cannot be read ({type(unreadable).__name__}); the gates fail closed until a stage is set",
            )
        return {
            "brand": self.brand,
            "settings": settings,
            **({"problem": problem} if problem else {}),
            "file": str(self.path),
            "changes": recent_changes(wiring.audit(), brand=self.brand),
        }

    def change(
        self,
        *,
        actor: str,
        reason: str,
        stage: str | None = None,
        pilot_users: list[str] | None = None,
        pilot_percent: int | None = None,
        kill_switch: bool | None = None,
    ) -> dict[str, Any]:
        from cartpilot import wiring

        change = set_stage(
            self.store, wiring.audit(), brand=self.brand, actor=actor, reason=reason, stage=stage,
            pilot_users=pilot_users, pilot_percent=pilot_percent, kill_switch=kill_switch,
        )  # fmt: skip
        before = change.before.model_dump(mode="json") if change.before is not None else None
        return {"from": before, "to": change.after.model_dump(mode="json")}


def rollout_routes(rollout: LocalRollout) -> list[Route]:
    async def show(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(rollout.show))

    async def change(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            if not isinstance(body, dict) or set(body) - _CHANGE_FIELDS:
                raise RolloutChangeRefused(f"send a JSON object with only {sorted(_CHANGE_FIELDS)}")
            for name, kind in (("stage", str), ("reason", str), ("actor", str), ("killSwitch", bool)):
                if name in body and not isinstance(body[name], kind):
                    raise RolloutChangeRefused(f"{name} must be a {kind.__name__}")
            if "pilotPercent" in body and (
                not isinstance(body["pilotPercent"], int) or isinstance(body["pilotPercent"], bool)
            ):
                raise RolloutChangeRefused("pilotPercent must be an integer 0..100")
            if "pilotUsers" in body and not (
                isinstance(body["pilotUsers"], list) and all(isinstance(u, str) for u in body["pilotUsers"])
            ):
                raise RolloutChangeRefused("pilotUsers must be a list of user ids")
            result = await run_in_threadpool(
                lambda: rollout.change(
                    actor=body.get("actor") or "operator:local",
                    reason=body.get("reason", ""),
                    stage=body.get("stage"),
                    pilot_users=body.get("pilotUsers"),
                    pilot_percent=body.get("pilotPercent"),
                    kill_switch=body.get("killSwitch"),
                )
            )
        except (ValueError, RolloutChangeRefused) as exc:
            return JSONResponse({"error": {"code": "INVALID_REQUEST", "message": str(exc)}}, status_code=400)
        return JSONResponse(result)

    return [
        Route("/_local/rollout", show, methods=["GET"]),
        Route("/_local/rollout", change, methods=["POST"]),
    ]
