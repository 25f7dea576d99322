"""Release identity: which code, prompts, protocols and policies a plan or audit record was made under.

A release id is ``rel-`` and the first 12 hex digits of the SHA-256 of its components' canonical JSON:

- ``code``: the SHA-256 of the shipped sources, file by file in path order (path and bytes): the core
  layer's ``cartpilot`` package, the functions' handlers and the state machine. Caches, compiled
  bytecode and tests are left out, so a clean clone and a working tree with ``__pycache__`` agree.
- ``prompts``: the brand's prompt version and its ``PromptSet.hash`` (the rendered system prompt,
  tools, draft schema and loop messages).
- ``protocols``: the UCP versions the connectors speak.
- ``policies``: the SHA-256 of the brand's ``policies.cedar``, ``policies.cedarschema`` and the
  ``brand.yaml`` fields the policies and the validator read (``POLICY_CONFIG_FIELDS``).

A deployed function does not hold the whole checkout, so the stack stamps the id and the code version
into every function's environment at synth (``CARTPILOT_RELEASE``, ``CARTPILOT_CODE_VERSION``),
computed from the checkout it deploys; anywhere else (the local stack, ``cartpilot release``) the id is
computed from the files. A clean clone of the deployed commit therefore prints the deployed id.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

RELEASE_ID_PATTERN: Final = r"^rel-[0-9a-f]{12}$"
RELEASE_ENV: Final = "CARTPILOT_RELEASE"
CODE_VERSION_ENV: Final = "CARTPILOT_CODE_VERSION"

PACKAGE_DIR: Final = Path(__file__).resolve().parent
# In a source checkout the package sits at layers/core/python/cartpilot under the repository root.
SOURCE_ROOT: Final = PACKAGE_DIR.parents[3]
# What ships, relative to the repository root: the layer's package, the handlers, the flow.
CODE_PATHS: Final = ("layers/core/python/cartpilot", "functions", "statemachines")
_IGNORED_DIRS: Final = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "tests"})
_IGNORED_SUFFIXES: Final = (".pyc", ".pyo")
BRAND_FILE: Final = "brand.yaml"
POLICY_FILES: Final = ("policies.cedar", "policies.cedarschema")
# The brand.yaml fields that decide what may run and how it is approved: limits and restricted
# categories are what the Cedar policies read, allowed merchants and currency rates are checked with
# them, the price tolerance is the drift rule.
POLICY_CONFIG_FIELDS: Final = (
    "limits",
    "restrictedCategories",
    "categoryAliases",
    "allowedMerchants",
    "currencyRates",
    "priceTolerancePercent",
)


class ReleaseError(ValueError):
    """The release cannot be computed or the stamped one is malformed."""


class PromptIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    version: str
    hash: str


class Release(BaseModel):
    """A release id and what it is made of; ``cartpilot release --json`` prints this."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    id: str = Field(pattern=RELEASE_ID_PATTERN)
    brand: str
    code: str = Field(description="SHA-256 of the shipped sources (layer, functions, state machine)")
    prompts: PromptIdentity
    protocols: tuple[str, ...] = Field(description="UCP versions the connectors speak, newest first")
    policies: str = Field(description="SHA-256 of the brand's Cedar files and policy settings")


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    # default=str: YAML dates and the like hash by their text.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _shipped_files(root: Path) -> Iterator[tuple[str, Path]]:
    for top in CODE_PATHS:
        base = root / top
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            relative = path.relative_to(root)
            if any(part in _IGNORED_DIRS or part.startswith(".") for part in relative.parts):
                continue
            if path.is_file() and not path.name.endswith(_IGNORED_SUFFIXES):
                yield relative.as_posix(), path


def code_version(root: Path = SOURCE_ROOT) -> str:
    """The SHA-256 over every shipped file's path and content, in path order.

    Each path and content is length-prefixed, so moving bytes from one file to the next changes it."""
    digest = hashlib.sha256()
    for name, path in sorted(_shipped_files(root)):
        content = path.read_bytes()
        encoded = name.encode()
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        digest.update(len(content).to_bytes(8, "big") + content)
    return "sha256:" + digest.hexdigest()


def read_brand_file(brand_dir: Path) -> dict[str, Any]:
    """brand.yaml as written. The release hashes what the brand's files say rather than the loaded
    model, so the stack computes it at synth from the same files without loading the whole brand."""
    import yaml  # only to compute a release; every plan model imports this module for its id pattern

    path = brand_dir / BRAND_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ReleaseError(f"{path}: {type(exc).__name__}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ReleaseError(f"{path} is not a brand file with a name")
    return raw


def prompt_identity(raw_brand: Mapping[str, Any]) -> PromptIdentity:
    from cartpilot.brands.config import PlannerConfig
    from cartpilot.planning.prompts import prompts_for

    planner = raw_brand.get("planner") or {}
    restricted = raw_brand.get("restrictedCategories") or {}
    prompts = prompts_for(
        str(planner.get("promptVersion", PlannerConfig.model_fields["promptVersion"].default)),
        brand_name=str(raw_brand.get("displayName", raw_brand["name"])),
        restricted={str(name): str(rule) for name, rule in restricted.items()},
        max_tool_rounds=int(
            planner.get("maxToolRounds", PlannerConfig.model_fields["maxToolRounds"].default)
        ),
    )
    return PromptIdentity(version=prompts.version, hash=prompts.hash)


def protocol_versions() -> tuple[str, ...]:
    from cartpilot.commerce.platform_profile import SUPPORTED_VERSIONS

    return tuple(SUPPORTED_VERSIONS)


def policy_bundle_hash(brand_dir: Path, raw_brand: Mapping[str, Any]) -> str:
    # A missing file counts as absent (None) rather than failing here: loading the brand's policies
    # refuses such a brand before any order runs.
    files: dict[str, str | None] = {}
    for name in POLICY_FILES:
        path = brand_dir / name
        files[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    config = {field: raw_brand.get(field) for field in POLICY_CONFIG_FIELDS}
    return _sha256(_canonical({"files": files, "config": config}))


def release_id(
    *, brand: str, code: str, prompts: PromptIdentity, protocols: tuple[str, ...], policies: str
) -> str:
    components = {
        "brand": brand,
        "code": code,
        "prompts": prompts.model_dump(mode="json"),
        "protocols": list(protocols),
        "policies": policies,
    }
    return "rel-" + hashlib.sha256(_canonical(components)).hexdigest()[:12]


def compute_release(
    brand_dir: Path, *, code: str | None = None, environ: Mapping[str, str] | None = None
) -> Release:
    """The release of the brand in ``brand_dir`` built from this code: the stamped code version where
    the environment has one (a deployed function), else the files under the source root."""
    env = os.environ if environ is None else environ
    code = code or env.get(CODE_VERSION_ENV) or code_version()
    raw = read_brand_file(brand_dir)
    prompts = prompt_identity(raw)
    protocols = protocol_versions()
    policies = policy_bundle_hash(brand_dir, raw)
    name = raw["name"]
    return Release(
        id=release_id(brand=name, code=code, prompts=prompts, protocols=protocols, policies=policies),
        brand=name,
        code=code,
        prompts=prompts,
        protocols=protocols,
        policies=policies,
    )


def stamped_release_id(environ: Mapping[str, str] | None = None) -> str | None:
    """The id stamped into a deployed function's environment, if any; a malformed one is refused."""
    value = (os.environ if environ is None else environ).get(RELEASE_ENV)
    if not value:
        return None
    if re.fullmatch(RELEASE_ID_PATTERN, value) is None:
        raise ReleaseError(f"{RELEASE_ENV} is not a release id: {value[:40]!r}")
    return value


def stamped_environment(release: Release) -> dict[str, str]:
    """What the stack puts into every function's environment."""
    return {RELEASE_ENV: release.id, CODE_VERSION_ENV: release.code}


def release_lines(release: Release) -> list[str]:
    """The release as ``cartpilot release`` prints it: the id, then one line per component."""
    return [
        f"{release.id}  (brand {release.brand})",
        f"  code       {release.code}",
        f"  prompts    {release.prompts.version} {release.prompts.hash}",
        f"  protocols  UCP {', '.join(release.protocols)}",
        f"  policies   {release.policies}",
    ]
