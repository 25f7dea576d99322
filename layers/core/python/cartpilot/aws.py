"""boto3 clients, created on first use and reused by a warm container."""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

# Every AWS call has a deadline; standard retry mode backs off on throttling.
_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})


@functools.cache
def dynamodb() -> Any:
    return boto3.resource("dynamodb", config=_CONFIG)


@functools.cache
def stepfunctions() -> Any:
    return boto3.client("stepfunctions", config=_CONFIG)


@functools.cache
def sns() -> Any:
    return boto3.client("sns", config=_CONFIG)


@functools.cache
def secretsmanager() -> Any:
    return boto3.client("secretsmanager", config=_CONFIG)


def reset_clients() -> None:
    """Drop cached clients (the local stack starts a fresh emulated account per run)."""
    for factory in (dynamodb, stepfunctions, sns, secretsmanager):
        factory.cache_clear()
