"""The release a stack deploys: computed at synth from the checkout, stamped into every function.

A deployed function holds only its handler and the layer, so it cannot hash the shipped code itself;
the id and the code version it was computed with travel in the environment (``cartpilot.release``).
``cartpilot release --brand NAME`` on the same checkout prints the same id.
"""

from __future__ import annotations

from cartpilot.release import Release, code_version, compute_release, stamped_environment
from infra.brands import Brand
from infra.settings import ProjectPaths


def deployed_release(brand: Brand, paths: ProjectPaths) -> Release:
    return compute_release(brand.directory, code=code_version(paths.root))


def release_environment(brand: Brand, paths: ProjectPaths) -> dict[str, str]:
    """``CARTPILOT_RELEASE`` and ``CARTPILOT_CODE_VERSION`` for every function of the stack."""
    return stamped_environment(deployed_release(brand, paths))
