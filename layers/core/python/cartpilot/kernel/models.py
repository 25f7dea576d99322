"""The core's pydantic models are built on first use, and SnapStart functions build them before the
snapshot.

Building a model's validator and serialiser is most of what importing a module of models costs.
Every model of the core sets ``defer_build=True`` in its ``model_config`` (subclasses inherit it),
so a model is built the first time it validates, serialises or describes itself and a function
pays only for the models it uses. A SnapStart function runs ``build_models`` before its snapshot,
so every environment restored from it starts with the loaded models built.
"""

from __future__ import annotations

from pydantic import BaseModel

_CORE = "cartpilot."


def core_models() -> list[type[BaseModel]]:
    """Every loaded model class of the core, parents before their subclasses."""
    found: list[type[BaseModel]] = []
    seen: set[type[BaseModel]] = set()
    pending = list(BaseModel.__subclasses__())
    while pending:
        model = pending.pop(0)
        if model in seen:
            continue
        seen.add(model)
        if model.__module__.startswith(_CORE):
            found.append(model)
        pending.extend(model.__subclasses__())
    return found


def unbuilt_models() -> list[type[BaseModel]]:
    """The loaded core models not built yet."""
    return [model for model in core_models() if not model.__pydantic_complete__]


def build_models() -> int:
    """Builds every loaded core model not built yet (a before-snapshot hook); returns how many.
    A model that cannot be built raises here, when the version is published, not at first use."""
    models = unbuilt_models()
    for model in models:
        model.model_rebuild(raise_errors=True)
    return len(models)
