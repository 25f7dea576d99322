"""Issue 12 row 3: the core's models build on first use, not at import, and the SnapStart functions
build every loaded model before the snapshot, so restored environments start with them built."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, PydanticUndefinedAnnotation, ValidationError

from cartpilot.kernel import models
from tests.unit.handler_probe import run_probe

REPO = Path(__file__).resolve().parents[2]


def test_a_deferred_core_model_builds_on_first_use_or_with_build_models() -> None:
    class Parcel(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)
        __module__ = "cartpilot.parcels"

        weight_grams: int

    class FragileParcel(Parcel):
        __module__ = "cartpilot.parcels"

        note: str

    assert [Parcel, FragileParcel] == [m for m in models.unbuilt_models() if m in (Parcel, FragileParcel)]
    assert models.build_models() >= 2
    assert Parcel.__pydantic_complete__ and FragileParcel.__pydantic_complete__
    assert models.unbuilt_models() == []
    assert models.build_models() == 0  # nothing left: running the hook twice builds nothing
    # Built or not, the model validates as configured.
    assert FragileParcel(weight_grams=3, note="glass").weight_grams == 3
    with pytest.raises(ValidationError):
        Parcel(weight_grams=3, colour="red")  # type: ignore[call-arg]


def test_models_outside_the_core_are_left_to_their_owners() -> None:
    class Elsewhere(BaseModel):
        model_config = ConfigDict(defer_build=True)

        name: str

    assert Elsewhere not in models.core_models()
    models.build_models()
    assert not Elsewhere.__pydantic_complete__


def test_a_model_that_cannot_be_built_stops_the_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(BaseModel):
        model_config = ConfigDict(defer_build=True)

        part: NotDefinedAnywhere  # type: ignore[name-defined]  # noqa: F821

    monkeypatch.setattr(models, "core_models", lambda: [Broken])
    with pytest.raises(PydanticUndefinedAnnotation):
        models.build_models()


_PROBE = """
import importlib.util, json, sys
from cartpilot.kernel import models, snapstart

spec = importlib.util.spec_from_file_location("handler_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
loaded = models.core_models()
at_import = {
    "loaded": len(loaded),
    "built": sorted(m.__qualname__ for m in loaded if m.__pydantic_complete__),
    "not_deferred": sorted(f"{m.__module__}.{m.__qualname__}" for m in loaded if not m.model_config.get("defer_build")),
}
snapstart.run_before_snapshot()
print(json.dumps({
    "at_import": at_import,
    "after_snapshot_hooks": {"loaded": len(models.core_models()), "unbuilt": len(models.unbuilt_models())},
}))
"""


@pytest.mark.parametrize(
    ("function", "built_at_import", "loaded_at_import"),
    [
        # The default context of a goal request is an instance, made when the module loads.
        ("api", ["GoalContext"], 20),
        # The validator loads the brand, its policies and the plan models before the snapshot
        # (or its first goal), not at import: only the error bodies of the kernel are loaded.
        ("validator", [], 0),
    ],
)
def test_a_snapstart_handler_imports_its_models_unbuilt_and_snapshots_them_built(
    function: str, built_at_import: list[str], loaded_at_import: int
) -> None:
    report = run_probe(_PROBE, str(REPO / "functions" / function / "app.py"))
    at_import = report["at_import"]
    assert at_import["loaded"] > loaded_at_import
    assert at_import["not_deferred"] == []
    assert at_import["built"] == built_at_import
    assert report["after_snapshot_hooks"]["loaded"] > 20
    assert report["after_snapshot_hooks"]["unbuilt"] == 0
