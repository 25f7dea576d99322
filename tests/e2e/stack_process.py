"""A local stack in its own process: for brand settings the shared test stack cannot have.

Only one in-process local stack fits in a test process (moto and the functions'
environment are process-wide), and the shared one runs the sandbox brand as shipped.
Tests that need other settings (a 10-second approval timeout, a short undo window, DEBUG
logs to scan) run ``cartpilot local`` in a subprocess for a copy of the sandbox brand.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from cartpilot.brands.config import brand_dir
from cartpilot_local.stack import REPO_ROOT

# The installed command, as a developer runs it: unlike `python -m`, it does not put the working
# directory on the import path, so a module the package does not install fails here too.
CARTPILOT = str(Path(sys.executable).parent / "cartpilot")

_STACK_VARIABLES = frozenset({
    "CARTPILOT_BRAND", "CARTPILOT_BRANDS_DIR", "GOALS_TABLE", "AUDIT_TABLE", "IDEMPOTENCY_TABLE", "COUNTERS_TABLE",
    "LINK_SIGNING_SECRET_ID", "VIEW_LINK_SECRET_ID", "MERCHANT_URL", "MERCHANT_READ_TIMEOUT", "MERCHANT_BREAKER_RESET_SECONDS", "NOTIFY_TOPIC_ARN", "STAFF_TOPIC_ARN", "STATE_MACHINE_ARN",
    "APPROVAL_BASE_URL", "LOG_LEVEL",
})  # fmt: skip


@dataclass
class StackProcess:
    """A local stack running in its own process, everything it prints captured in ``output``."""

    api_url: str
    merchant_url: str
    output: Path

    def output_text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def ledger(self) -> dict[str, list[dict[str, Any]]]:
        ledger: dict[str, list[dict[str, Any]]] = httpx.get(
            f"{self.merchant_url}/_sandbox/ledger", timeout=10
        ).json()
        return ledger

    def inject_fault(self, route: str, mode: str, times: int = 1) -> None:
        httpx.post(
            f"{self.merchant_url}/_sandbox/faults",
            json={"route": route, "mode": mode, "times": times},
            timeout=10,
        ).raise_for_status()


def brand_variant(root: Path, name: str, **settings: Any) -> Path:
    """A copy of the sandbox brand (policies, users and all) with some brand.yaml settings changed.

    Returns the brands directory to point CARTPILOT_BRANDS_DIR at.
    """
    target = root / "brands" / name
    shutil.copytree(brand_dir("sandbox"), target)
    config = yaml.safe_load((target / "brand.yaml").read_text(encoding="utf-8"))
    config.update(name=name, **settings)
    (target / "brand.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return root / "brands"


def _serving_urls(process: subprocess.Popen[bytes], output: Path, timeout: float) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        text = output.read_text(encoding="utf-8", errors="replace")
        api = re.search(r"API\s+(http://127\.0\.0\.1:\d+)", text)
        merchant = re.search(r"Merchant\s+(http://127\.0\.0\.1:\d+)", text)
        if api and merchant and "Press Ctrl-C to stop." in text:
            return api.group(1), merchant.group(1)
        if process.poll() is not None:
            raise RuntimeError(f"the local stack exited with {process.returncode}:\n{text[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the local stack did not start within {timeout:.0f} s:\n{text[-3000:]}")
        time.sleep(0.1)


@contextmanager
def running_stack_process(
    output: Path,
    *,
    brand: str = "sandbox",
    brands_dir: Path | None = None,
    log_level: str = "WARNING",
    startup_timeout: float = 60.0,
    merchant_url: str | None = None,
    feed: Path | None = None,
) -> Iterator[StackProcess]:
    """``cartpilot local`` on free loopback ports, stopped with Ctrl-C (SIGINT) as a developer would.

    With ``merchant_url`` it runs against that merchant (and ``feed``) instead of starting the sandbox.
    """
    # A developer's shell, not this process: an in-process stack here has set AWS and function variables.
    env = {name: value for name, value in os.environ.items() if name not in _STACK_VARIABLES}
    env = {name: value for name, value in env.items() if not name.startswith(("AWS_", "POWERTOOLS_"))}
    env["PYTHONUNBUFFERED"] = "1"
    if brands_dir is not None:
        env["CARTPILOT_BRANDS_DIR"] = str(brands_dir)
    command = [CARTPILOT, "local", "--port", "0", "--merchant-port", "0",
               "--brand", brand, "--log-level", log_level]  # fmt: skip
    if merchant_url is not None:
        command += ["--merchant-url", merchant_url]
    if feed is not None:
        command += ["--feed", str(feed)]
    with output.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    try:
        api_url, merchant_url = _serving_urls(process, output, startup_timeout)
        yield StackProcess(api_url=api_url, merchant_url=merchant_url, output=output)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@dataclass
class MerchantProcess:
    """``cartpilot merchant``: the sandbox merchant alone, as an outside merchant would run."""

    url: str
    output: Path

    def ledger(self) -> dict[str, list[dict[str, Any]]]:
        ledger: dict[str, list[dict[str, Any]]] = httpx.get(f"{self.url}/_sandbox/ledger", timeout=10).json()
        return ledger

    def conformance(self) -> dict[str, Any]:
        report: dict[str, Any] = httpx.get(f"{self.url}/_sandbox/conformance", timeout=10).json()
        return report


def write_feed(path: Path, currency: str = "CNY") -> Path:
    """The sandbox's catalog as a product feed, written by ``cartpilot merchant --write-feed``."""
    subprocess.run(
        [CARTPILOT, "merchant", "--write-feed", str(path), "--currency", currency],
        check=True, cwd=REPO_ROOT, capture_output=True, timeout=60,
    )  # fmt: skip
    return path


@contextmanager
def running_merchant_process(
    output: Path,
    *,
    ucp_version: str,
    catalog: bool = True,
    payment_handlers: list[str] | None = None,
    startup_timeout: float = 60.0,
) -> Iterator[MerchantProcess]:
    """The sandbox merchant in its own process on a free port, checking every message against the schemas."""
    env = {name: value for name, value in os.environ.items() if name not in _STACK_VARIABLES}
    env["PYTHONUNBUFFERED"] = "1"
    command = [CARTPILOT, "merchant", "--port", "0",
               "--ucp-version", ucp_version, "--validate-schemas"]  # fmt: skip
    if not catalog:
        command.append("--no-catalog")
    for handler in payment_handlers or ():
        command += ["--payment-handler", handler]
    with output.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            text = output.read_text(encoding="utf-8", errors="replace")
            found = re.search(r"(http://127\.0\.0\.1:\d+)", text)
            if found:
                break
            if process.poll() is not None:
                raise RuntimeError(f"the merchant exited with {process.returncode}:\n{text[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the merchant did not start within {startup_timeout:.0f} s:\n{text[-3000:]}"
                )
            time.sleep(0.1)
        yield MerchantProcess(url=found.group(1), output=output)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
