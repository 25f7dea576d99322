"""The core layer: the ``cartpilot`` package, its runtime dependencies and the brand's files.

Lambda mounts a layer at ``/opt``: ``python/`` is on the import path and ``brands/<brand>/`` is where
``CARTPILOT_BRANDS_DIR`` points. The layer is built on the host, never in Docker: pip downloads the
wheels of ``[project].dependencies`` for the Lambda platform (Graviton, manylinux) and the target
Python version, and the sources are copied next to them. Only those dependencies go in; the local
stack and the developer tools (moto, pytest, FastAPI) never do.

``python -m infra.layer --brand NAME --out DIR`` builds the same layout outside of a synth, for CI
caches and ``-c layer=prebuilt:DIR``.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_

from infra.settings import LayerMode, LayerSource, ProjectPaths

RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64
LAMBDA_PLATFORM = "manylinux2014_aarch64"
PIP_TIMEOUT_SECONDS = 900
_IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_IGNORED_SUFFIXES = (".pyc", ".pyo")


class LayerError(RuntimeError):
    """The layer cannot be built from the given sources."""


def runtime_requirements(pyproject: Path) -> tuple[str, ...]:
    """``[project].dependencies``: the runtime dependencies, without the optional extras."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    dependencies = project.get("dependencies")
    if not isinstance(dependencies, list) or not all(isinstance(item, str) for item in dependencies):
        raise LayerError(f"{pyproject}: [project].dependencies must be a list of requirement strings")
    return tuple(dependencies)


def python_version(runtime: lambda_.Runtime = RUNTIME) -> str:
    """``python3.14`` -> ``3.14``: wheels are chosen for the interpreter Lambda runs, not the host's."""
    return runtime.name.removeprefix("python")


def pip_install_command(requirements: Sequence[str], target: Path, version: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        # The host's interpreter would compile bytecode for itself, which Lambda's cannot use.
        "--no-compile",
        "--platform",
        LAMBDA_PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        version,
        "--only-binary=:all:",
        "--target",
        str(target),
        *requirements,
    ]


@dataclass(frozen=True)
class LayerContents:
    """What goes into one brand's layer."""

    package_dir: Path
    brand_dir: Path
    requirements: tuple[str, ...]
    python_version: str

    @classmethod
    def for_brand(cls, paths: ProjectPaths, brand_dir: Path, *, with_dependencies: bool) -> LayerContents:
        return cls(
            package_dir=paths.core_package_dir,
            brand_dir=brand_dir,
            requirements=runtime_requirements(paths.pyproject) if with_dependencies else (),
            python_version=python_version(),
        )

    def fingerprint(self) -> str:
        """Changes whenever the layer would: sources, brand files, dependency list or target Python."""
        digest = hashlib.sha256()
        for part in (self.python_version, LAMBDA_PLATFORM, *sorted(self.requirements)):
            digest.update(part.encode() + b"\0")
        for label, root in (("package", self.package_dir), (f"brand:{self.brand_dir.name}", self.brand_dir)):
            for path in _files(root):
                digest.update(f"{label}/{path.relative_to(root).as_posix()}".encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


def build_layer(contents: LayerContents, out: Path) -> None:
    """Lays out ``out/python/...`` and ``out/brands/<brand>/...`` as Lambda mounts them under /opt."""
    if not (contents.package_dir / "__init__.py").is_file():
        raise LayerError(f"{contents.package_dir} is not the cartpilot package")
    if not contents.brand_dir.is_dir():
        raise LayerError(f"brand directory {contents.brand_dir} does not exist")
    site = out / "python"
    site.mkdir(parents=True, exist_ok=True)
    if contents.requirements:
        command = pip_install_command(contents.requirements, site, contents.python_version)
        try:
            subprocess.run(command, check=True, timeout=PIP_TIMEOUT_SECONDS)  # noqa: S603 - fixed argv, no shell
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise LayerError(f"installing the layer's dependencies failed: {exc}") from exc
        # Console scripts carry the host's interpreter path; nothing in Lambda runs them.
        shutil.rmtree(site / "bin", ignore_errors=True)
    _copy_tree(contents.package_dir, site / "cartpilot")
    _copy_tree(contents.brand_dir, out / "brands" / contents.brand_dir.name)


@jsii.implements(cdk.ILocalBundling)
class LocalLayerBundler:
    """Builds the layer on the synth host, so no Docker daemon is needed."""

    def __init__(self, contents: LayerContents) -> None:
        self._contents = contents

    def try_bundle(self, output_dir: str, options: cdk.BundlingOptions) -> bool:
        build_layer(self._contents, Path(output_dir))
        return True


def core_layer_code(source: LayerSource, paths: ProjectPaths, brand_dir: Path) -> lambda_.Code:
    if source.mode is LayerMode.PREBUILT:
        assert source.prebuilt_dir is not None
        check_prebuilt_layer(source.prebuilt_dir, brand_dir.name)
        return lambda_.Code.from_asset(str(source.prebuilt_dir))

    contents = LayerContents.for_brand(paths, brand_dir, with_dependencies=source.mode is LayerMode.BUILD)
    return lambda_.Code.from_asset(
        str(contents.package_dir),
        asset_hash_type=cdk.AssetHashType.CUSTOM,
        asset_hash=f"{source.mode.value}-{contents.fingerprint()}",
        bundling=cdk.BundlingOptions(
            # Required by the API but never pulled: the local bundler always builds this asset.
            image=cdk.DockerImage.from_registry(f"public.ecr.aws/sam/build-{RUNTIME.name}"),
            local=cast(cdk.ILocalBundling, LocalLayerBundler(contents)),
        ),
    )


def check_prebuilt_layer(directory: Path, brand: str) -> None:
    if not (directory / "python" / "cartpilot" / "__init__.py").is_file():
        raise LayerError(f"prebuilt layer {directory} has no python/cartpilot package")
    shipped = sorted(path.name for path in (directory / "brands").glob("*") if path.is_dir())
    if shipped != [brand]:
        raise LayerError(
            f"prebuilt layer {directory} ships brands {shipped}, the stack is for {brand!r}: "
            "build one layer per brand (python -m infra.layer --brand NAME --out DIR)"
        )


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and not _ignored(path.relative_to(root)):
            yield path


def _ignored(relative: Path) -> bool:
    return any(part in _IGNORED_DIRS for part in relative.parts) or relative.name.endswith(_IGNORED_SUFFIXES)


def _copy_tree(source: Path, destination: Path) -> None:
    shutil.copytree(
        source,
        destination,
        ignore=shutil.ignore_patterns(*_IGNORED_DIRS, *(f"*{suffix}" for suffix in _IGNORED_SUFFIXES)),
        dirs_exist_ok=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    from infra.settings import PROJECT_ROOT, DeploySettings

    parser = argparse.ArgumentParser(prog="python -m infra.layer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--brand", required=True, help="the brand whose files the layer ships")
    parser.add_argument("--out", required=True, type=Path, help="an empty or missing directory")
    parser.add_argument("--brands-dir", default="brands", help="default: brands")
    parser.add_argument("--without-dependencies", action="store_true", help="sources only, no pip")
    args = parser.parse_args(argv)

    settings = DeploySettings.from_context({"brandsDir": args.brands_dir}, root=PROJECT_ROOT)
    out: Path = args.out
    if out.exists() and any(out.iterdir()):
        parser.error(f"{out} is not empty")
    contents = LayerContents.for_brand(
        settings.paths,
        settings.paths.brands_dir / args.brand,
        with_dependencies=not args.without_dependencies,
    )
    build_layer(contents, out)
    print(f"layer for {args.brand} built in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
