"""The release id: stable for the same files, different when the code, the prompts, the UCP versions or
the policies change, and printed by ``cartpilot release`` as the stack stamps it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cartpilot import release as releases
from cartpilot.brands.config import load_brand
from cartpilot.cli import main
from cartpilot.planning.prompts import load_prompts
from cartpilot.release import (
    CODE_VERSION_ENV,
    RELEASE_ENV,
    ReleaseError,
    code_version,
    compute_release,
    stamped_environment,
    stamped_release_id,
)

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = ROOT / "brands" / "sandbox"
CODE = "sha256:" + "c" * 64


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A small source tree laid out as the repository ships it."""
    package = tmp_path / "layers" / "core" / "python" / "cartpilot"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('"""core"""\n')
    (package / "plans.py").write_text("TOTAL = 1\n")
    (tmp_path / "functions" / "api").mkdir(parents=True)
    (tmp_path / "functions" / "api" / "app.py").write_text("def handler(event, context): ...\n")
    (tmp_path / "statemachines").mkdir()
    (tmp_path / "statemachines" / "order_flow.asl.json").write_text('{"StartAt": "PlanOrder"}\n')
    return tmp_path


@pytest.fixture
def brand_dir(tmp_path: Path) -> Path:
    """A copy of the sandbox brand's files to change one at a time."""
    copy = tmp_path / "brands" / "sandbox"
    shutil.copytree(SANDBOX, copy)
    return copy


def test_the_id_names_its_components_and_is_stable_across_runs():
    first = compute_release(SANDBOX, environ={})
    assert first.id.startswith("rel-") and len(first.id) == 16
    assert first == compute_release(SANDBOX, environ={})
    # A fresh interpreter (another run, another process) computes the same id from the same files.
    printed = subprocess.run(
        [sys.executable, "-c", "import sys; from cartpilot.cli import main; sys.exit(main(['release', '--json']))"],
        capture_output=True, text=True, check=True, cwd=ROOT, env={"PATH": "/usr/bin:/bin"},
    ).stdout  # fmt: skip
    assert json.loads(printed)["id"] == first.id


def test_the_prompt_component_is_the_brands_prompt_set_hash():
    brand = load_brand("sandbox")
    prompts = load_prompts(brand.planner.promptVersion, brand, max_tool_rounds=brand.planner.maxToolRounds)
    release = compute_release(SANDBOX, environ={})
    assert (release.prompts.version, release.prompts.hash) == (prompts.version, prompts.hash)
    assert release.protocols == ("2026-04-08", "2026-01-11")


def test_the_code_version_covers_every_shipped_file_and_nothing_else(checkout: Path):
    before = code_version(checkout)
    assert before == code_version(checkout)

    # Bytecode, caches and tests do not ship.
    cache = checkout / "layers" / "core" / "python" / "cartpilot" / "__pycache__"
    cache.mkdir()
    (cache / "plans.cpython-311.pyc").write_bytes(b"\x00compiled")
    (checkout / "functions" / "api" / "tests").mkdir()
    (checkout / "functions" / "api" / "tests" / "test_app.py").write_text("def test(): ...\n")
    assert code_version(checkout) == before

    for changed in (
        checkout / "layers" / "core" / "python" / "cartpilot" / "plans.py",
        checkout / "functions" / "api" / "app.py",
        checkout / "statemachines" / "order_flow.asl.json",
    ):
        original = changed.read_bytes()
        changed.write_bytes(original + b"\n")
        assert code_version(checkout) != before, changed
        changed.write_bytes(original)
    assert code_version(checkout) == before

    # A renamed file is another release, and so is a new one.
    (checkout / "functions" / "api" / "app.py").rename(checkout / "functions" / "api" / "main.py")
    assert code_version(checkout) != before


def test_the_id_changes_with_the_code(brand_dir: Path):
    assert (
        compute_release(brand_dir, code=CODE).id != compute_release(brand_dir, code="sha256:" + "d" * 64).id
    )


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("file", "old", "new", "changed"),
    [
        # The prompts render the brand's name and restricted categories.
        ("brand.yaml", "displayName: Sandbox Outfitters", "displayName: Sandbox Outfitters Ltd", {"prompts"}),
        ("brand.yaml", "  maxToolRounds: 4", "  maxToolRounds: 3", {"prompts"}),
        # The policy bundle: the Cedar files and the settings the policies read.
        ("policies.cedar", "permit", "permit ", {"policies"}),
        ("policies.cedarschema", "entity", "entity ", {"policies"}),
        ("brand.yaml", "perOrder: {amount_minor: 300000", "perOrder: {amount_minor: 310000", {"policies"}),
        ("brand.yaml", "[sandbox-merchant]", "[sandbox-merchant, other]", {"policies"}),
        ("brand.yaml", "priceTolerancePercent: 2", "priceTolerancePercent: 3", {"policies"}),
        # A restricted category is both: the model is told of it and the policies enforce it.
        ("brand.yaml", "  knives: deny", "  knives: staff", {"prompts", "policies"}),
    ],
)
def test_the_id_changes_with_the_prompts_and_the_policies(
    brand_dir: Path, file: str, old: str, new: str, changed: set[str]
):
    before = compute_release(brand_dir, code=CODE)
    _edit(brand_dir / file, old, new)
    after = compute_release(brand_dir, code=CODE)
    assert after.id != before.id
    differs = {
        name
        for name in ("code", "prompts", "protocols", "policies")
        if getattr(after, name) != getattr(before, name)
    }
    assert differs == changed


def test_the_id_changes_with_the_prompt_version(
    brand_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    before = compute_release(brand_dir, code=CODE)
    prompts = tmp_path / "prompts"
    shutil.copytree(releases.PACKAGE_DIR / "prompts" / "v1", prompts / "v2")
    monkeypatch.setattr("cartpilot.planning.prompts.PROMPTS_DIR", prompts)
    _edit(brand_dir / "brand.yaml", "promptVersion: v1", "promptVersion: v2")
    after = compute_release(brand_dir, code=CODE)
    assert after.prompts.version == "v2" and after.id != before.id


def test_the_id_changes_with_the_protocol_versions(brand_dir: Path, monkeypatch: pytest.MonkeyPatch):
    before = compute_release(brand_dir, code=CODE)
    monkeypatch.setattr(releases, "protocol_versions", lambda: ("2026-04-08",))
    assert compute_release(brand_dir, code=CODE).id != before.id


def test_comments_and_settings_outside_the_release_leave_it_alone(brand_dir: Path):
    before = compute_release(brand_dir, code=CODE)
    _edit(brand_dir / "brand.yaml", "# The sandbox brand", "# The sandbox brand, reworded")
    _edit(brand_dir / "brand.yaml", "approvalReminderLeadSeconds: 3600", "approvalReminderLeadSeconds: 1800")
    assert compute_release(brand_dir, code=CODE) == before


def test_a_deployed_function_uses_the_stamped_code_version_and_id(brand_dir: Path):
    computed = compute_release(brand_dir, environ={CODE_VERSION_ENV: CODE})
    assert computed.code == CODE and computed == compute_release(brand_dir, code=CODE)
    stamped = stamped_environment(computed)
    assert stamped == {RELEASE_ENV: computed.id, CODE_VERSION_ENV: CODE}
    assert stamped_release_id(stamped) == computed.id
    assert stamped_release_id({}) is None


@pytest.mark.parametrize("value", ["rel-XYZ", "rel-0123456789abc", "v1", "rel-0123456789ab\n"])
def test_a_malformed_stamp_is_refused(value: str):
    with pytest.raises(ReleaseError):
        stamped_release_id({RELEASE_ENV: value})


def test_a_brand_without_a_brand_file_has_no_release(tmp_path: Path):
    with pytest.raises(ReleaseError):
        compute_release(tmp_path, code=CODE)


def test_cartpilot_release_prints_the_id_and_its_components(capsys: pytest.CaptureFixture[str]):
    expected = compute_release(SANDBOX, environ={})
    assert main(["release", "--brand", "sandbox", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == expected.model_dump(mode="json")

    assert main(["release"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{expected.id}  (brand sandbox)"
    assert f"  prompts    v1 {expected.prompts.hash}" in lines
    assert "  protocols  UCP 2026-04-08, 2026-01-11" in lines


def test_cartpilot_release_ignores_a_stamped_environment(monkeypatch, capsys: pytest.CaptureFixture[str]):
    """On a checkout it says what the files would deploy, whatever the shell exports."""
    monkeypatch.setenv(CODE_VERSION_ENV, CODE)
    monkeypatch.setenv(RELEASE_ENV, "rel-000000000000")
    assert main(["release", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == compute_release(SANDBOX, environ={}).id


def test_cartpilot_release_refuses_unknown_and_malformed_brands(capsys: pytest.CaptureFixture[str]):
    assert main(["release", "--brand", "nope"]) == 1
    assert "brand nope" in capsys.readouterr().err
    assert main(["release", "--brand", "../sandbox"]) == 2
    assert "not a brand name" in capsys.readouterr().err
