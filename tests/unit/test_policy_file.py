"""Every brand's policy-tests.yaml, one test per case, as `cartpilot policy test BRAND` runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cartpilot.brands.config import BrandConfigError, default_brands_dir, load_brand
from cartpilot.brands.policy import policies_for
from cartpilot.brands.policy_tests import (
    POLICY_TESTS_FILE,
    PolicyTestCase,
    load_policy_tests,
    run_case,
)
from cartpilot.cli import main

CASE_FILES = sorted(default_brands_dir().glob(f"*/{POLICY_TESTS_FILE}"))


def _cases() -> list[object]:
    params: list[object] = []
    for path in CASE_FILES:
        tests = load_policy_tests(path)
        for case in tests.cases:
            params.append(
                pytest.param(path.parent.name, case, tests.today, id=f"{path.parent.name}: {case.name}")
            )
    return params


def test_every_brand_with_policies_ships_policy_tests():
    with_policies = {path.parent.name for path in default_brands_dir().glob("*/policies.cedar")}
    assert with_policies and with_policies == {path.parent.name for path in CASE_FILES}


@pytest.mark.parametrize(("brand_name", "case", "today"), _cases())
def test_policy_case(brand_name, case: PolicyTestCase, today):
    result = run_case(case, load_brand(brand_name), today)
    assert result.passed, result.problem


@pytest.mark.parametrize("path", CASE_FILES, ids=[path.parent.name for path in CASE_FILES])
def test_every_policy_has_a_case_where_it_speaks_and_one_where_it_is_silent(path: Path):
    cases = load_policy_tests(path).cases
    for policy in policies_for(path.parent.name):
        about = [case for case in cases if case.checks == policy.id]
        assert any(policy.id in case.expect.reasons for case in about), f"{policy.id} never speaks"
        assert any(policy.id not in case.expect.reasons for case in about), f"{policy.id} is never silent"


def test_a_wrong_expectation_fails_and_says_what_the_policies_decided(brand):
    case = PolicyTestCase.model_validate(
        {
            "name": "socks claimed to need approval",
            "checks": "threshold.confirmation",
            "items": [{"item": "socks-1-m", "category": "socks", "price": 5900}],
            "expect": {"tier": "APPROVAL", "reasons": ["threshold.confirmation"]},
        }
    )
    result = run_case(case, brand, load_policy_tests(CASE_FILES[0]).today)
    assert not result.passed
    assert result.problem == "expected APPROVAL ['threshold.confirmation'], got AUTO ['order.permitted']"


def test_the_command_prints_each_case_and_exits_zero_when_all_pass(capsys):
    assert main(["policy", "test", "sandbox"]) == 0
    out = capsys.readouterr().out
    cases = load_policy_tests(default_brands_dir() / "sandbox" / POLICY_TESTS_FILE).cases
    assert out.count("PASS  ") == len(cases) and f"{len(cases)} passed, 0 failed" in out


def test_the_command_exits_non_zero_when_a_case_fails(tmp_path, monkeypatch, capsys):
    brand = tmp_path / "sandbox"
    for name in ("brand.yaml", "users.yaml", "policies.cedar", "policies.cedarschema"):
        (brand / name).parent.mkdir(exist_ok=True)
        (brand / name).write_text(
            (default_brands_dir() / "sandbox" / name).read_text(encoding="utf-8"), encoding="utf-8"
        )
    original = yaml.safe_load(
        (default_brands_dir() / "sandbox" / POLICY_TESTS_FILE).read_text(encoding="utf-8")
    )
    original["cases"][0]["expect"] = {"tier": "DENY", "reasons": ["limit.per-order"]}
    (brand / POLICY_TESTS_FILE).write_text(yaml.safe_dump(original), encoding="utf-8")
    monkeypatch.setenv("CARTPILOT_BRANDS_DIR", str(tmp_path))
    load_brand.cache_clear()
    try:
        assert main(["policy", "test", "sandbox"]) == 1
    finally:
        load_brand.cache_clear()
    out = capsys.readouterr().out
    assert "FAIL  " + original["cases"][0]["name"] in out and "1 failed" in out


def test_a_malformed_case_file_is_a_clear_error(tmp_path):
    path = tmp_path / POLICY_TESTS_FILE
    path.write_text(
        "today: 2026-11-25\ncases:\n  - name: no items\n    checks: x\n    expect: {tier: AUTO, reasons: []}\n"
    )
    with pytest.raises(BrandConfigError, match="items"):
        load_policy_tests(path)
