"""What a security review runs: cdk-nag's AwsSolutions pack and cfn-lint, over every brand's template."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
from cfnlint.api import ManualArgs, lint_file

from tests.infra.conftest import ALL_BRANDS, Synthesis

pytestmark = pytest.mark.xdist_group("infra")

FINDING = re.compile(r"^AwsSolutions-[A-Z]+[0-9]+(\[.+\])?$")


def test_cdk_nag_finds_nothing_unacknowledged(synthesis: Synthesis) -> None:
    assert synthesis.violations == []
    assert synthesis.error is None
    assert sorted(stack.brand.name for stack in synthesis.stacks.values()) == sorted(ALL_BRANDS)


def test_cdk_nag_fails_the_synth_when_findings_are_not_acknowledged(unacknowledged: Synthesis) -> None:
    assert unacknowledged.error is not None
    assert "ValidationFailed" in unacknowledged.error
    assert (unacknowledged.outdir / "validation-report.json").is_file()
    assert unacknowledged.violations


def test_every_acknowledgment_answers_a_finding_it_is_placed_on(
    synthesis: Synthesis, unacknowledged: Synthesis
) -> None:
    findings: dict[str, list[str]] = defaultdict(list)
    for violation in unacknowledged.violations:
        findings[violation["rule"]].append(violation["path"])
    for path, finding, _ in synthesis.acknowledgments:
        assert any(found == path or found.startswith(path + "/") for found in findings[finding]), (
            path,
            finding,
        )


def test_every_acknowledgment_carries_a_reason_specific_to_this_stack(synthesis: Synthesis) -> None:
    assert synthesis.acknowledgments
    for path, finding, reason in synthesis.acknowledgments:
        assert FINDING.match(finding), finding
        assert len(reason) >= 80, (path, finding, reason)


def test_cfn_lint_reports_no_errors(synthesis: Synthesis) -> None:
    for path in synthesis.template_paths():
        matches = lint_file(path, config=ManualArgs(regions=["us-east-1", "eu-west-1", "ap-southeast-1"]))
        errors = [f"{m.rule.id} {m.message} ({m.path})" for m in matches if m.rule.id.startswith("E")]
        assert errors == [], path.name
