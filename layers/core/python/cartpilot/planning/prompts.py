"""Prompts as code: versioned templates under ``cartpilot/prompts/<version>/``, rendered and hashed.

A version directory holds the system prompt (rules, edge cases, few-shot examples), the tool
definitions, the plan-draft schema and the short messages of the tool loop. Versions are never
edited once a plan has cited them: a change is a new directory, so a plan's ``promptVersion`` and
``promptHash`` say exactly which instructions the model saw. The hash covers the rendered system
prompt (the brand's name and categories included), the tools, the schema and the loop messages.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import jinja2

from cartpilot.brands.config import BrandConfig

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
DRAFT_SCHEMA_NAME = "plan_draft"
_GOAL_MARKERS = ("<<<", ">>>")


class PromptVersionMissing(LookupError):
    """The configured prompt version has no directory under ``cartpilot/prompts``."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(frozen=True)
class PromptSet:
    version: str
    system: str
    tools: tuple[ToolSpec, ...]
    draft_schema: dict[str, Any]
    hash: str
    _templates: jinja2.Environment

    def user_message(self, *, goal: str, today: date, currency: str, context: dict[str, Any]) -> str:
        # The goal cannot close its own markers: a shopper's text stays inside them.
        fenced = goal
        for marker in _GOAL_MARKERS:
            fenced = fenced.replace(marker, marker[0] * 2)
        return self._render(
            "user.md.j2",
            goal=fenced,
            today=today.isoformat(),
            currency=currency,
            context=json.dumps(context, ensure_ascii=False, indent=1) if context else "(nothing)",
        )

    def repair_message(self, errors: list[str]) -> str:
        return self._render("repair.md.j2", errors=errors)

    def finish_message(self) -> str:
        return self._render("finish.md.j2")

    def _render(self, name: str, **values: Any) -> str:
        return self._templates.get_template(name).render(**values).strip()


def available_versions() -> list[str]:
    return sorted(path.name for path in PROMPTS_DIR.iterdir() if (path / "system.md.j2").is_file())


def load_prompts(version: str, brand: BrandConfig, *, max_tool_rounds: int) -> PromptSet:
    return prompts_for(
        version,
        brand_name=brand.displayName,
        restricted=brand.restrictedCategories,
        max_tool_rounds=max_tool_rounds,
    )


def prompts_for(
    version: str, *, brand_name: str, restricted: Mapping[str, str], max_tool_rounds: int
) -> PromptSet:
    """The prompt set from just the brand values it renders (``cartpilot.release`` hashes brand
    files this way without loading the whole brand)."""
    denied = tuple(sorted(name for name, rule in restricted.items() if rule == "deny"))
    staff = tuple(sorted(name for name, rule in restricted.items() if rule == "staff"))
    return _load(version, brand_name, denied, staff, max_tool_rounds)


@functools.cache
def _load(
    version: str, brand_name: str, denied: tuple[str, ...], staff: tuple[str, ...], max_tool_rounds: int
) -> PromptSet:
    directory = PROMPTS_DIR / version
    if not (directory / "system.md.j2").is_file():
        raise PromptVersionMissing(
            f"prompt version {version!r} not found; available: {', '.join(available_versions())}"
        )
    # Plain text for a model, not HTML: escaping would corrupt the JSON examples.
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701
    )
    draft_schema = json.loads((directory / "plan_draft.schema.json").read_text(encoding="utf-8"))
    tools = tuple(
        ToolSpec(name=raw["name"], description=raw["description"], parameters=raw["parameters"])
        for raw in json.loads((directory / "tools.json").read_text(encoding="utf-8"))
    )
    system = (
        templates.get_template("system.md.j2")
        .render(
            brand=brand_name,
            denied=denied,
            staff=staff,
            max_tool_rounds=max_tool_rounds,
            draft_schema=json.dumps(draft_schema, ensure_ascii=False, separators=(",", ":")),
        )
        .strip()
    )
    fingerprint = {
        "version": version,
        "system": system,
        "tools": [{"name": t.name, "description": t.description, "parameters": t.parameters} for t in tools],
        "schema": draft_schema,
        "loop": {
            name: (directory / name).read_text(encoding="utf-8")
            for name in ("user.md.j2", "repair.md.j2", "finish.md.j2")
        },
    }
    canonical = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return PromptSet(
        version=version,
        system=system,
        tools=tools,
        draft_schema=draft_schema,
        hash="sha256:" + hashlib.sha256(canonical.encode()).hexdigest(),
        _templates=templates,
    )
