"""The rollout settings as a Powertools feature-flags document, and the decision read from it.

The document (schema-valid for ``aws_lambda_powertools.utilities.feature_flags``)::

    {
      "stage":       {"default": "pilot", "boolean_type": false},
      "kill_switch": {"default": false},
      "mutations":   {"default": false, "rules": {
          "pilot users":   {"when_match": true, "conditions": [
              {"action": "IN", "key": "user_id", "value": ["user-1"]}]},
          "pilot percent": {"when_match": true, "conditions": [
              {"action": "MODULO_RANGE", "key": "user_bucket",
               "value": {"BASE": 100, "START": 0, "END": 9}}]}}}
    }

``mutations`` says who may run mutating steps when the stage lets anyone: everyone at ``all``
(its default), the pilot users and a stable share of users at ``pilot``. Its rules stay in the
document at every stage, so dropping to ``read-only`` and back keeps the pilot list.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from cartpilot.rollout.model import RolloutSettings, RolloutStage

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.feature_flags.base import StoreProvider

# Powertools' feature-flags package loads its AppConfig store, and with it boto3: it is imported where
# flags are evaluated or validated, so a handler that merely holds the gate starts without boto3.

STAGE_FLAG = "stage"
MUTATIONS_FLAG = "mutations"
KILL_SWITCH_FLAG = "kill_switch"
_PILOT_USERS_RULE = "pilot users"
_PILOT_PERCENT_RULE = "pilot percent"
BUCKETS = 100


def user_bucket(user_id: str) -> int:
    """0..99, the same for a user on every machine and every run (Python's ``hash`` is salted per
    process; a SHA-256 prefix is not)."""
    digest = hashlib.sha256(user_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def flags_document(settings: RolloutSettings) -> dict[str, Any]:
    rules: dict[str, Any] = {}
    if settings.pilotUsers:
        rules[_PILOT_USERS_RULE] = {
            "when_match": True,
            "conditions": [{"action": "IN", "key": "user_id", "value": list(settings.pilotUsers)}],
        }
    if settings.pilotPercent > 0:
        # MODULO_RANGE needs START <= END, so 0 % is "no rule", not an empty range.
        rules[_PILOT_PERCENT_RULE] = {
            "when_match": True,
            "conditions": [
                {
                    "action": "MODULO_RANGE",
                    "key": "user_bucket",
                    "value": {"BASE": BUCKETS, "START": 0, "END": settings.pilotPercent - 1},
                }
            ],
        }
    document: dict[str, Any] = {
        STAGE_FLAG: {"default": settings.stage.value, "boolean_type": False},
        KILL_SWITCH_FLAG: {"default": settings.killSwitch},
        MUTATIONS_FLAG: {"default": settings.stage is RolloutStage.ALL, "rules": rules},
    }
    _validate(document)
    return document


def settings_from_document(document: dict[str, Any]) -> RolloutSettings:
    """The inverse of ``flags_document``; raises ``SchemaValidationError`` or ``ValidationError``
    for a document that is not one (a hand edit gone wrong is refused, not guessed at)."""
    _validate(document)
    rules = document.get(MUTATIONS_FLAG, {}).get("rules", {})
    users: list[str] = []
    percent = 0
    if _PILOT_USERS_RULE in rules:
        users = list(rules[_PILOT_USERS_RULE]["conditions"][0]["value"])
    if _PILOT_PERCENT_RULE in rules:
        percent = int(rules[_PILOT_PERCENT_RULE]["conditions"][0]["value"]["END"]) + 1
    return RolloutSettings(
        stage=RolloutStage(document[STAGE_FLAG]["default"]),
        pilotUsers=users,
        pilotPercent=percent,
        killSwitch=bool(document.get(KILL_SWITCH_FLAG, {}).get("default", False)),
    )


def _validate(document: dict[str, Any]) -> None:
    from aws_lambda_powertools.utilities.feature_flags.schema import SchemaValidator

    SchemaValidator(document).validate()


class StaticFlags:
    """A document held in memory: the settings of a stack with no rollout configured, and tests.
    It has what Powertools asks of a ``StoreProvider`` without subclassing it (see the imports)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._document = document

    @property
    def get_raw_configuration(self) -> dict[str, Any]:
        return self._document

    def get_configuration(self) -> dict[str, Any]:
        return self._document


class RolloutFlags:
    """Reads the rollout decision through Powertools from any flags store (AppConfig, a file)."""

    def __init__(self, store: StoreProvider | StaticFlags) -> None:
        from aws_lambda_powertools.utilities.feature_flags import FeatureFlags

        self._store = store
        self._flags = FeatureFlags(store=store)  # type: ignore[arg-type]  # StaticFlags: the same interface

    def settings(self) -> RolloutSettings:
        return settings_from_document(self._store.get_configuration())

    def stage(self) -> RolloutStage:
        # An unreadable stage is treated as the safest one that still answers: read-only.
        value = self._flags.evaluate(name=STAGE_FLAG, default=RolloutStage.READ_ONLY.value)
        try:
            return RolloutStage(str(value))
        except ValueError:
            return RolloutStage.READ_ONLY

    def kill_switch(self) -> bool:
        # A store that cannot be read stops mutations: halting is safe, charging blind is not.
        return bool(self._flags.evaluate(name=KILL_SWITCH_FLAG, default=True))

    def pilot_member(self, user_id: str) -> bool:
        context = {"user_id": user_id, "user_bucket": user_bucket(user_id)}
        return bool(self._flags.evaluate(name=MUTATIONS_FLAG, context=context, default=False))
