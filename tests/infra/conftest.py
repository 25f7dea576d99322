"""One synth per test session: every real brand plus a fixture brand, checked by cdk-nag as in ``cdk synth``.

The app is built the way ``npx aws-cdk synth`` builds it (the context of ``cdk.json``, cdk-nag as a
validation plugin), except that the layer is assembled from sources without installing
dependencies, so the session needs neither the network nor Docker.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template
from constructs import IConstruct

import infra.api
import infra.functions
import infra.orchestration
import infra.releases
import infra.secrets
from infra.app import add_brand_stacks
from infra.brands import discover_brands
from infra.nag import add_checks
from infra.settings import PROJECT_ROOT, DeploySettings
from infra.stack import CartPilotStack

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_BRANDS_DIR = FIXTURES / "brands"
REAL_BRANDS = [brand.name for brand in discover_brands(PROJECT_ROOT / "brands")]
FIXTURE_BRANDS = [brand.name for brand in discover_brands(FIXTURE_BRANDS_DIR)]
ALL_BRANDS = REAL_BRANDS + FIXTURE_BRANDS
# Modules that acknowledge cdk-nag findings, each holding its own reference to ``acknowledge``.
ACKNOWLEDGING_MODULES = (infra.api, infra.functions, infra.orchestration, infra.releases, infra.secrets)


@dataclass
class Synthesis:
    outdir: Path
    stacks: dict[str, CartPilotStack]
    error: str | None
    violations: list[dict[str, Any]]
    acknowledgments: list[tuple[str, str, str]] = field(default_factory=list)
    _templates: dict[str, Template] = field(default_factory=dict)

    def template_json(self, brand: str) -> dict[str, Any]:
        path = self.outdir / f"{self.stacks[brand].artifact_id}.template.json"
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def template(self, brand: str) -> Template:
        if brand not in self._templates:
            self._templates[brand] = Template.from_json(self.template_json(brand))
        return self._templates[brand]

    def template_paths(self) -> list[Path]:
        return [self.outdir / f"{stack.artifact_id}.template.json" for stack in self.stacks.values()]

    def logical_id(self, brand: str, construct: IConstruct) -> str:
        stack = self.stacks[brand]
        default_child = construct.node.default_child
        assert isinstance(default_child, cdk.CfnElement)
        return stack.resolve(stack.get_logical_id(default_child))  # type: ignore[no-any-return]


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((PROJECT_ROOT / "cdk.json").read_text(encoding="utf-8"))["context"]
    return context


def synthesize(outdir: Path, *, acknowledge: bool) -> Synthesis:
    assert not set(REAL_BRANDS) & set(FIXTURE_BRANDS), "a real brand took the fixture brand's name"
    app = cdk.App(outdir=str(outdir), context=cdk_json_context(), analytics_reporting=False)
    stacks: list[CartPilotStack] = []
    recorded: list[tuple[str, str, str]] = []

    def record(scope: IConstruct, finding: str, reason: str) -> None:
        recorded.append((scope.node.path, finding, reason))
        if acknowledge:
            cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=finding, reason=reason))

    with pytest.MonkeyPatch.context() as patch:
        for module in ACKNOWLEDGING_MODULES:
            patch.setattr(module, "acknowledge", record)
        for brands_dir in (None, FIXTURE_BRANDS_DIR):
            context = {"layer": "source"} | ({"brandsDir": str(brands_dir)} if brands_dir else {})
            stacks += add_brand_stacks(app, DeploySettings.from_context(context))
        add_checks(app)
        error: str | None = None
        try:
            app.synth()
        except RuntimeError as exc:
            error = str(exc)

    report_path = outdir / "validation-report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else {}
    violations = [
        {"rule": violation["ruleName"], "path": construct["constructPath"]}
        for plugin in report.get("pluginReports", [])
        for violation in plugin.get("violations", [])
        for construct in violation.get("violatingConstructs", [])
    ]
    return Synthesis(
        outdir=outdir,
        stacks={stack.brand.name: stack for stack in stacks},
        error=error,
        violations=violations,
        acknowledgments=recorded,
    )


@pytest.fixture(scope="session")
def synthesis(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    return synthesize(tmp_path_factory.mktemp("cdk.out"), acknowledge=True)


@pytest.fixture(scope="session")
def unacknowledged(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    """The same app with every acknowledgment withheld: what cdk-nag finds on its own."""
    return synthesize(tmp_path_factory.mktemp("cdk.out-unacknowledged"), acknowledge=False)


@pytest.fixture(scope="session", params=ALL_BRANDS)
def brand_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def template(synthesis: Synthesis, brand_name: str) -> Template:
    return synthesis.template(brand_name)


@pytest.fixture(scope="session")
def resources(synthesis: Synthesis, brand_name: str) -> dict[str, dict[str, Any]]:
    data: dict[str, dict[str, Any]] = synthesis.template_json(brand_name)["Resources"]
    return data


@pytest.fixture(scope="session")
def stack(synthesis: Synthesis, brand_name: str) -> CartPilotStack:
    return synthesis.stacks[brand_name]


def live_alias(synthesis: Synthesis, brand: str, name: str) -> dict[str, str]:
    """``{"Ref": <alias id>}``: the ARN of the function's ``live`` alias, what everything invokes."""
    return {"Ref": synthesis.logical_id(brand, synthesis.stacks[brand].functions.live[name])}


def of_type(resources: dict[str, dict[str, Any]], resource_type: str) -> dict[str, dict[str, Any]]:
    return {key: value for key, value in resources.items() if value["Type"] == resource_type}


def table_ids(synthesis: Synthesis, brand_name: str) -> dict[str, str]:
    """Logical id -> table name (goals, audit, idempotency, counters, schedules) in one brand's template."""
    data = synthesis.stacks[brand_name].data
    return {
        synthesis.logical_id(brand_name, getattr(data, name)): name
        for name in ("goals", "audit", "idempotency", "counters", "schedules")
    }


def brand_key(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The brand's encryption key (logical id, resource); the stack's other key only signs plan snapshots."""
    (found,) = (
        (key_id, key)
        for key_id, key in of_type(resources, "AWS::KMS::Key").items()
        if key["Properties"].get("KeyUsage") != "SIGN_VERIFY"
    )
    return found


def statements_of_role(resources: dict[str, dict[str, Any]], role_id: str) -> list[dict[str, Any]]:
    """Every statement of the IAM policies attached to one role, with Action always a list."""
    statements = []
    for policy in of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                statements.append(statement | {"Action": actions if isinstance(actions, list) else [actions]})
    return statements


def resource_refs(statement: dict[str, Any]) -> list[Any]:
    """What a statement grants on; a NotResource grant (SMS: anything but a topic) reads "NOT <arn>"."""
    if "NotResource" in statement:
        excluded = statement["NotResource"]
        return [f"NOT {arn}" for arn in (excluded if isinstance(excluded, list) else [excluded])]
    resource = statement["Resource"]
    return resource if isinstance(resource, list) else [resource]


def iter_refs(value: Any) -> Iterator[str]:
    """Logical ids referenced anywhere inside a CloudFormation value (Ref and Fn::GetAtt)."""
    if isinstance(value, dict):
        if "Ref" in value:
            yield value["Ref"]
        if "Fn::GetAtt" in value:
            yield value["Fn::GetAtt"][0]
        for item in value.values():
            yield from iter_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from iter_refs(item)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every infra test on one xdist worker (``--dist loadgroup``): the session's synth, the
    slowest fixture of the suite, then happens once instead of once per worker."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.xdist_group("cdk-synth"))
