"""The app's inputs: brands, context settings, the layer build and the ASL checks. No synth here."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_

from infra.app import build_app
from infra.brands import BrandError, discover_brands, load_brand, select_brands
from infra.functions import FUNCTIONS
from infra.layer import (
    LAMBDA_PLATFORM,
    RUNTIME,
    LayerContents,
    LayerError,
    build_layer,
    check_prebuilt_layer,
    pip_install_command,
    runtime_requirements,
)
from infra.orchestration import (
    ORDER_STEPS_FILE,
    ORDER_STEPS_VARIABLE,
    UNDO_FLOW_FILE,
    DefinitionError,
    check_definition,
    task_resources,
)
from infra.settings import PROJECT_ROOT, DeploySettings, LayerMode, SettingsError
from tests.infra.conftest import FIXTURE_BRANDS_DIR

pytestmark = pytest.mark.xdist_group("infra")


def test_cdk_json_runs_the_infra_app_from_the_repository_root() -> None:
    config = json.loads((PROJECT_ROOT / "cdk.json").read_text(encoding="utf-8"))
    assert config["app"] == ".venv/bin/python -m infra.app"
    assert config["context"]["@aws-cdk/aws-iam:minimizePolicies"] is True


def test_every_function_directory_is_deployed_and_nothing_else() -> None:
    on_disk = {
        path.parent.relative_to(PROJECT_ROOT / "functions").as_posix()
        for path in (PROJECT_ROOT / "functions").rglob("app.py")
    }
    assert on_disk == {spec.source for spec in FUNCTIONS}


def test_functions_run_the_newest_python_runtime_aws_cdk_lib_offers() -> None:
    offered = [name for name in dir(lambda_.Runtime) if name.startswith("PYTHON_3_")]
    newest = max(offered, key=lambda name: int(name.removeprefix("PYTHON_3_")))
    assert RUNTIME.name == getattr(lambda_.Runtime, newest).name


def test_brand_file_yields_what_the_stack_needs_and_tolerates_the_rest() -> None:
    harbor = load_brand(FIXTURE_BRANDS_DIR / "harbor")
    assert (harbor.name, harbor.currency) == ("harbor", "USD")
    assert harbor.merchant_url == "https://commerce.harbor.example"
    assert harbor.ses_identity == "orders@harbor.example"
    assert harbor.stack_name == "CartPilot-harbor"
    sandbox = load_brand(PROJECT_ROOT / "brands" / "sandbox")
    assert sandbox.currency == "CNY"
    # The sandbox names a sender so the local stack sends (and the outbox shows) receipts by email.
    assert sandbox.ses_identity == "receipts@sandbox-outfitters.example"


def test_brand_named_unlike_its_directory_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "other"
    directory.mkdir()
    (directory / "brand.yaml").write_text("name: harbor\ncurrency: USD\n", encoding="utf-8")
    with pytest.raises(BrandError, match="differs from its directory"):
        load_brand(directory)


def test_brand_context_builds_one_stack_and_an_unknown_brand_is_an_error() -> None:
    brands = discover_brands(PROJECT_ROOT / "brands") + discover_brands(FIXTURE_BRANDS_DIR)
    assert [brand.name for brand in select_brands(brands, "harbor")] == ["harbor"]
    assert select_brands(brands, None) == brands
    with pytest.raises(BrandError, match="unknown brand 'nope'"):
        select_brands(brands, "nope")


def test_brand_context_reaches_the_app_as_cdk_passes_it() -> None:
    app = cdk.App(context={"brand": "harbor", "brandsDir": str(FIXTURE_BRANDS_DIR), "layer": "source"})
    assert [stack.stack_name for stack in build_app(app)] == ["CartPilot-harbor"]


def test_a_public_api_url_is_for_one_brands_stack(tmp_path: Path) -> None:
    context = {
        "brandsDir": str(FIXTURE_BRANDS_DIR),
        "layer": "source",
        "publicApiUrl": "https://api.harbor.example/",
    }
    assert DeploySettings.from_context(context).public_api_url == "https://api.harbor.example"
    (stack,) = build_app(cdk.App(context=context | {"brand": "harbor"}))
    assert stack.stack_name == "CartPilot-harbor"
    # Two brands, two APIs: one URL cannot serve both profiles.
    shutil.copytree(FIXTURE_BRANDS_DIR / "harbor", tmp_path / "harbor")
    twin = tmp_path / "harbor-twin"
    shutil.copytree(FIXTURE_BRANDS_DIR / "harbor", twin)
    brand_file = twin / "brand.yaml"
    brand_file.write_text(brand_file.read_text(encoding="utf-8").replace("name: harbor", "name: harbor-twin"))
    with pytest.raises(SettingsError, match="one brand"):
        build_app(cdk.App(context=context | {"brandsDir": str(tmp_path)}))


def test_context_values_from_the_command_line_are_parsed() -> None:
    settings = DeploySettings.from_context(
        {
            "brand": "sandbox",
            "layer": "prebuilt:build/layer",
            "mutatingConcurrency": "3",
            "apiGatewayAccountRole": "false",
            "brandsDir": "/elsewhere/brands",
        }
    )
    assert settings.brand == "sandbox"
    assert settings.layer.mode is LayerMode.PREBUILT
    assert settings.layer.prebuilt_dir == PROJECT_ROOT / "build" / "layer"
    assert settings.mutating_concurrency == 3
    assert settings.api_gateway_account_role is False
    assert settings.paths.brands_dir == Path("/elsewhere/brands")
    assert settings.paths.functions_dir == PROJECT_ROOT / "functions"

    defaults = DeploySettings.from_context({})
    assert defaults.layer.mode is LayerMode.BUILD
    assert defaults.paths.state_machine_file == PROJECT_ROOT / "statemachines" / "order_flow.asl.json"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("layer", "docker"),
        ("layer", "prebuilt:"),
        ("mutatingConcurrency", "-1"),
        ("publicApiUrl", "http://api.example.com"),  # UCP profiles are served over HTTPS only
    ],
)
def test_unusable_context_values_are_refused(key: str, value: str) -> None:
    with pytest.raises(SettingsError):
        DeploySettings.from_context({key: value})


def test_layer_dependencies_are_the_runtime_ones_for_lambda_on_graviton(tmp_path: Path) -> None:
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    requirements = runtime_requirements(PROJECT_ROOT / "pyproject.toml")
    assert list(requirements) == pyproject["project"]["dependencies"]
    assert not any(
        name in " ".join(requirements).lower() for name in ("moto", "pytest", "fastapi", "uvicorn")
    )

    command = pip_install_command(requirements, tmp_path, "3.14")
    assert command[command.index("--platform") + 1] == LAMBDA_PLATFORM == "manylinux2014_aarch64"
    assert command[command.index("--python-version") + 1] == "3.14"
    assert RUNTIME.name == "python3.14"
    assert "--only-binary=:all:" in command
    assert command[command.index("--target") + 1] == str(tmp_path)
    assert command[-len(requirements) :] == list(requirements)


def test_source_layer_holds_the_package_and_only_its_own_brand(tmp_path: Path) -> None:
    settings = DeploySettings.from_context({})
    contents = LayerContents.for_brand(
        settings.paths, PROJECT_ROOT / "brands" / "sandbox", with_dependencies=False
    )
    build_layer(contents, tmp_path)

    assert (tmp_path / "python" / "cartpilot" / "__init__.py").is_file()
    assert (tmp_path / "python" / "cartpilot" / "approvals" / "links.py").is_file()
    assert [path.name for path in (tmp_path / "brands").iterdir()] == ["sandbox"]
    assert (tmp_path / "brands" / "sandbox" / "brand.yaml").is_file()
    assert not list(tmp_path.rglob("__pycache__"))
    assert not (tmp_path / "python" / "cartpilot_local").exists()


def test_layer_fingerprint_follows_the_brand_files(tmp_path: Path) -> None:
    settings = DeploySettings.from_context({})
    brand_dir = tmp_path / "harbor"
    shutil.copytree(FIXTURE_BRANDS_DIR / "harbor", brand_dir)
    before = LayerContents.for_brand(settings.paths, brand_dir, with_dependencies=True).fingerprint()
    assert LayerContents.for_brand(settings.paths, brand_dir, with_dependencies=True).fingerprint() == before
    (brand_dir / "policies.cedar").write_text("forbid(principal, action, resource);\n", encoding="utf-8")
    after = LayerContents.for_brand(settings.paths, brand_dir, with_dependencies=True).fingerprint()
    assert after != before
    without_dependencies = LayerContents.for_brand(settings.paths, brand_dir, with_dependencies=False)
    assert without_dependencies.fingerprint() != after


def test_prebuilt_layer_must_ship_exactly_the_stacks_brand(tmp_path: Path) -> None:
    (tmp_path / "python" / "cartpilot").mkdir(parents=True)
    (tmp_path / "python" / "cartpilot" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "brands" / "sandbox").mkdir(parents=True)
    check_prebuilt_layer(tmp_path, "sandbox")
    (tmp_path / "brands" / "harbor").mkdir()
    with pytest.raises(LayerError, match="one layer per brand"):
        check_prebuilt_layer(tmp_path, "sandbox")


def _task(resource: str, function: str | None = None) -> dict[str, object]:
    parameters = {"FunctionName": function} if function else {}
    return {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True}


def test_definition_variables_must_be_functions_the_stack_substitutes() -> None:
    definition = json.dumps(
        {"StartAt": "A", "States": {"A": _task("arn:aws:states:::lambda:invoke", "${MysteryFunctionArn}")}}
    )
    with pytest.raises(DefinitionError, match="MysteryFunctionArn"):
        check_definition(definition, {"PlannerFunctionArn": object()}, Path("flow.asl.json"))


def test_definition_tasks_must_be_lambda_invocations_the_role_can_make() -> None:
    nested = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                "Type": "Parallel",
                "End": True,
                "Branches": [
                    {"StartAt": "Put", "States": {"Put": _task("arn:aws:states:::dynamodb:putItem")}}
                ],
            }
        },
    }
    assert list(task_resources(nested)) == ["arn:aws:states:::dynamodb:putItem"]
    with pytest.raises(DefinitionError, match="dynamodb:putItem"):
        check_definition(json.dumps(nested), {}, Path("flow.asl.json"))


@pytest.mark.parametrize(
    ("file", "nested"),
    [
        ("order_flow.asl.json", {ORDER_STEPS_VARIABLE}),
        (ORDER_STEPS_FILE, set()),
        (UNDO_FLOW_FILE, set()),
    ],
)
def test_each_state_machine_definition_fits_the_stack(file: str, nested: set[str]) -> None:
    definition = (PROJECT_ROOT / "statemachines" / file).read_text(encoding="utf-8")
    variables = {spec.asl_variable: spec for spec in FUNCTIONS if spec.asl_variable}
    used = check_definition(definition, variables, Path(file), nested=dict.fromkeys(nested, object()))
    assert used and set(used) <= set(variables)
