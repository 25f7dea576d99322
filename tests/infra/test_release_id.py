"""Every function of a brand's stack carries the release id the checkout computes for that brand, so
``cartpilot release --brand NAME`` on the deployed commit prints what its plans and audit records say."""

from __future__ import annotations

import pytest

from cartpilot.release import CODE_VERSION_ENV, RELEASE_ENV, code_version, compute_release
from infra.settings import PROJECT_ROOT
from tests.infra.conftest import Synthesis

pytestmark = pytest.mark.xdist_group("infra")


def test_every_function_is_stamped_with_the_brands_release(synthesis: Synthesis, brand_name: str) -> None:
    stack = synthesis.stacks[brand_name]
    expected = compute_release(stack.brand.directory, environ={})
    assert expected.code == code_version(PROJECT_ROOT)
    resources = synthesis.template_json(brand_name)["Resources"]
    functions = stack.functions.by_name
    assert functions
    for name, function in functions.items():
        environment = resources[synthesis.logical_id(brand_name, function)]["Properties"]["Environment"][
            "Variables"
        ]
        assert environment[RELEASE_ENV] == expected.id, name
        assert environment[CODE_VERSION_ENV] == expected.code, name


def test_brands_deploy_different_releases_of_the_same_code(synthesis: Synthesis) -> None:
    releases = {
        name: compute_release(stack.brand.directory, environ={}) for name, stack in synthesis.stacks.items()
    }
    assert len({release.code for release in releases.values()}) == 1
    assert len({release.id for release in releases.values()}) == len(releases)
