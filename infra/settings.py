"""Deployment settings: where the sources live and how to build the stacks, from CDK context.

Every key has a default that suits ``npx aws-cdk deploy`` from the repository root; tests and CI
override them with ``-c key=value`` (or ``App(context=...)``).

=====================  =====================================================================
context key            meaning
=====================  =====================================================================
brand                  build only this brand's stack (default: every brand)
brandsDir              directory holding ``<brand>/brand.yaml`` (default ``brands``)
functionsDir           directory holding the Lambda handlers (default ``functions``)
stateMachineFile       the order-flow ASL (default ``statemachines/order_flow.asl.json``)
layer                  ``build`` (pip-install the runtime dependencies for Lambda, the default),
                       ``source`` (the cartpilot package and the brand only, no dependencies:
                       fast and offline, for tests) or ``prebuilt:<dir>`` (a directory laid out
                       by ``python -m infra.layer``)
mutatingConcurrency    reserved concurrency of each merchant-mutating function (default 5;
                       0 leaves them unreserved, for accounts with a tiny concurrency quota)
apiGatewayAccountRole  create the account-wide role API Gateway logs with (default true; set
                       false when the account already has one)
alarmEmail             subscribe this address to the alarm topic
merchantUrl            override the default merchant's ``url`` (``merchants[0]``) of the brand file (e.g. the production endpoint)
publicApiUrl           the API's public HTTPS base URL, under which CartPilot's UCP profile is
                       served (default: the stage URL API Gateway gives the brand's API); with
                       one brand only (``-c brand=NAME``), as each brand has its own API
=====================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MUTATING_CONCURRENCY = 5


class SettingsError(ValueError):
    """A context value cannot be used."""


class LayerMode(StrEnum):
    BUILD = "build"
    SOURCE = "source"
    PREBUILT = "prebuilt"


@dataclass(frozen=True)
class LayerSource:
    mode: LayerMode
    prebuilt_dir: Path | None = None

    @classmethod
    def parse(cls, value: str, *, root: Path) -> LayerSource:
        if value.startswith("prebuilt:"):
            directory = value.removeprefix("prebuilt:")
            if not directory:
                raise SettingsError("layer=prebuilt:<dir> needs a directory")
            return cls(LayerMode.PREBUILT, _resolve(directory, root))
        try:
            return cls(LayerMode(value))
        except ValueError:
            raise SettingsError(f"layer must be build, source or prebuilt:<dir>, got {value!r}") from None


@dataclass(frozen=True)
class ProjectPaths:
    root: Path
    brands_dir: Path
    functions_dir: Path
    state_machine_file: Path

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"

    @property
    def core_package_dir(self) -> Path:
        return self.root / "layers" / "core" / "python" / "cartpilot"


@dataclass(frozen=True)
class DeploySettings:
    paths: ProjectPaths
    layer: LayerSource
    brand: str | None = None
    mutating_concurrency: int = DEFAULT_MUTATING_CONCURRENCY
    api_gateway_account_role: bool = True
    alarm_email: str | None = None
    merchant_url: str | None = None
    public_api_url: str | None = None

    @classmethod
    def from_context(cls, context: dict[str, Any], *, root: Path = PROJECT_ROOT) -> DeploySettings:
        paths = ProjectPaths(
            root=root,
            brands_dir=_resolve(context.get("brandsDir", "brands"), root),
            functions_dir=_resolve(context.get("functionsDir", "functions"), root),
            state_machine_file=_resolve(
                context.get("stateMachineFile", "statemachines/order_flow.asl.json"), root
            ),
        )
        return cls(
            paths=paths,
            layer=LayerSource.parse(str(context.get("layer", LayerMode.BUILD.value)), root=root),
            brand=_optional(context.get("brand")),
            mutating_concurrency=_non_negative_int(
                context.get("mutatingConcurrency", DEFAULT_MUTATING_CONCURRENCY), "mutatingConcurrency"
            ),
            api_gateway_account_role=_flag(
                context.get("apiGatewayAccountRole", True), "apiGatewayAccountRole"
            ),
            alarm_email=_optional(context.get("alarmEmail")),
            merchant_url=_optional(context.get("merchantUrl")),
            public_api_url=_https_url(context.get("publicApiUrl"), "publicApiUrl"),
        )


def _resolve(value: object, root: Path) -> Path:
    path = Path(str(value))
    return path if path.is_absolute() else root / path


def _optional(value: object) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def _https_url(value: object, key: str) -> str | None:
    url = _optional(value)
    if url is None:
        return None
    # UCP overview.md, "Hosting": profiles MUST be served over HTTPS.
    if not url.startswith("https://"):
        raise SettingsError(f"{key} must be an https:// URL, got {url!r}")
    return url.rstrip("/")


def _non_negative_int(value: object, key: str) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise SettingsError(f"{key} must be an integer, got {value!r}") from None
    if number < 0:
        raise SettingsError(f"{key} must be 0 or more, got {number}")
    return number


def _flag(value: object, key: str) -> bool:
    # Values given with -c on the command line arrive as strings.
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise SettingsError(f"{key} must be true or false, got {value!r}")
