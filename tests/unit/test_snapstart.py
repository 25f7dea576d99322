"""Issue 12 row 3: SnapStart runtime hooks. Environments resumed from one snapshot must not share
the ``random`` state, connections or cached secrets; each restore hook clears what it must, and the
api and validator handlers register them."""

from __future__ import annotations

import importlib.util
import random
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cartpilot import wiring
from cartpilot.adapters.aws import clients
from cartpilot.kernel import snapstart
from cartpilot.wiring import restore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "GOALS_TABLE": "goals",
        "AUDIT_TABLE": "audit",
        "IDEMPOTENCY_TABLE": "idempotency",
        "LINK_SIGNING_SECRET_ID": "link-keys",
        "VIEW_LINK_SECRET_ID": "view-keys",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:flow",
    }.items():
        monkeypatch.setenv(name, value)
    snapstart.forget_hooks()
    wiring.reset()
    yield
    snapstart.forget_hooks()
    wiring.reset()


class Closable:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


# ---- The registry and the runtime --------------------------------------------------------


def test_hooks_run_in_the_runtime_order_and_register_once() -> None:
    calls: list[str] = []

    def first() -> None:
        calls.append("first")

    def second() -> None:
        calls.append("second")

    snapstart.after_restore(first)
    snapstart.after_restore(second)
    snapstart.after_restore(first)
    snapstart.before_snapshot(first)
    snapstart.before_snapshot(second)
    assert snapstart.restore_hooks() == (first, second)
    snapstart.run_after_restore()
    assert calls == ["first", "second"]
    calls.clear()
    snapstart.run_before_snapshot()  # the runtime runs them latest first
    assert calls == ["second", "first"]


def test_on_lambda_the_runtime_library_gets_every_hook(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = types.ModuleType("snapshot_restore_py")
    registered: dict[str, list[Any]] = {"before": [], "after": []}
    runtime.register_before_snapshot = registered["before"].append  # type: ignore[attr-defined]
    runtime.register_after_restore = registered["after"].append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)

    restore.register_restore_hooks()
    restore.register_restore_hooks()
    warm = snapstart.before_snapshot(lambda: None)
    assert registered["after"] == [
        restore.reseed_random,
        restore.drop_connections,
        restore.clear_secret_caches,
    ]
    assert registered["before"] == [warm]


def test_without_the_runtime_library_hooks_stay_in_the_registry() -> None:
    assert "snapshot_restore_py" not in sys.modules
    restore.register_restore_hooks()
    assert snapstart.restore_hooks() == (
        restore.reseed_random,
        restore.drop_connections,
        restore.clear_secret_caches,
    )


# ---- Each hook ---------------------------------------------------------------------------


def test_reseeding_gives_each_restored_environment_its_own_random_sequence() -> None:
    # Two environments resumed from one snapshot start with the same generator state.
    random.seed(1234)
    snapshot_state = random.getstate()
    without_hook = [random.random() for _ in range(4)]
    random.setstate(snapshot_state)
    restore.reseed_random()
    first = [random.random() for _ in range(4)]
    random.setstate(snapshot_state)
    restore.reseed_random()
    second = [random.random() for _ in range(4)]
    assert first != without_hook
    assert first != second


def test_dropping_connections_forgets_aws_clients_and_closes_merchant_and_model_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cartpilot.planning import setup
    from cartpilot.wiring import merchants

    dynamodb = clients.dynamodb()
    stepfunctions = clients.stepfunctions()
    assert clients.dynamodb() is dynamodb
    merchant, provider = Closable(), Closable()
    monkeypatch.setitem(merchants._merchants, ("m", "u", "v", 1.0, 1.0, 1.0), merchant)  # type: ignore[arg-type]
    monkeypatch.setitem(setup._providers, "model", provider)  # type: ignore[index]

    restore.drop_connections()

    assert clients.dynamodb() is not dynamodb
    assert clients.stepfunctions() is not stepfunctions
    assert merchant.closed and provider.closed
    assert not merchants._merchants


def test_clearing_secrets_forgets_cached_secret_values_and_what_was_built_from_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aws_lambda_powertools.utilities import parameters
    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS

    # A secret read before the snapshot: Powertools keeps its provider (and client) and the value.
    cached_provider = object()
    monkeypatch.setitem(DEFAULT_PROVIDERS, "secrets", cached_provider)
    link_keys, view_keys, workflow = wiring.link_keys(), wiring.view_link_keys(), wiring.workflow()
    settings = wiring.config.settings()
    assert parameters  # loaded, as in a function that has read a secret

    restore.clear_secret_caches()

    assert "secrets" not in DEFAULT_PROVIDERS
    assert wiring.link_keys() is not link_keys
    assert wiring.view_link_keys() is not view_keys
    assert wiring.workflow() is not workflow
    # Read from the environment, the same in every restored environment: kept.
    assert wiring.config.settings() is settings


def test_every_cached_factory_of_the_composition_root_is_forgotten_on_restore() -> None:
    # Load every wiring module, so a cache added to any of them later is held to this too.
    package = Path(wiring.__file__).parent
    for path in package.glob("*.py"):
        if path.stem != "__init__":
            importlib.import_module(f"cartpilot.wiring.{path.stem}")
    found = dict(restore.wiring_caches())
    for name in (
        "cartpilot.wiring.link_keys",
        "cartpilot.wiring.view_link_keys",
        "cartpilot.wiring.plan_keys",
        "cartpilot.wiring.plan_signer",
        "cartpilot.wiring.idempotency_store",
        "cartpilot.wiring.goals",
        "cartpilot.wiring.signing.signing_keys",
    ):
        assert name in found, name
    cleared: list[str] = []
    for name, factory in found.items():
        factory.__dict__["cache_clear"] = lambda name=name: cleared.append(name)
    try:
        snapstart.forget_hooks()
        restore.register_restore_hooks()
        snapstart.run_after_restore()
    finally:
        for factory in found.values():
            del factory.__dict__["cache_clear"]
    assert set(cleared) == set(found) - restore.KEPT_CACHES


# ---- The handlers that run with SnapStart ----------------------------------------------------


@pytest.mark.parametrize("function", ["api", "validator"])
def test_the_snapstart_handlers_register_the_restore_hooks(
    function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CARTPILOT_BRAND", "sandbox")
    monkeypatch.setenv("CARTPILOT_BRANDS_DIR", str(REPO / "brands"))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    spec = importlib.util.spec_from_file_location(
        f"{function}_snapstart_app", REPO / "functions" / function / "app.py"
    )
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert set(snapstart.restore_hooks()) == {
        restore.reseed_random,
        restore.drop_connections,
        restore.clear_secret_caches,
    }


def test_the_api_snapshot_is_taken_with_every_route_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARTPILOT_BRAND", "sandbox")
    monkeypatch.setenv("CARTPILOT_BRANDS_DIR", str(REPO / "brands"))
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    spec = importlib.util.spec_from_file_location("api_snapshot_app", REPO / "functions" / "api" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    docs_routes = lambda: [r for r in module.app._static_routes if getattr(r, "path", "") == "/_docs"]  # noqa: E731
    assert not docs_routes()
    snapstart.run_before_snapshot()
    for name in module._ROUTE_MODULES:
        assert name in sys.modules, name
    assert docs_routes()
