"""boto3 clients, created on first use and reused by a warm container."""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _config() -> Any:
    # Every AWS call has a deadline; standard retry mode backs off on throttling.
    from botocore.config import Config

    return Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3})


def _boto3() -> Any:
    # boto3 is imported with the first client, not with this module: most of a cold start's
    # import time is boto3, and a handler module should not pay it before it needs AWS.
    import boto3

    return boto3


@functools.cache
def dynamodb() -> Any:
    return _boto3().resource("dynamodb", config=_config())


@functools.cache
def stepfunctions() -> Any:
    return _boto3().client("stepfunctions", config=_config())


@functools.cache
def sns() -> Any:
    return _boto3().client("sns", config=_config())


@functools.cache
def secretsmanager() -> Any:
    return _boto3().client("secretsmanager", config=_config())


@functools.cache
def s3() -> Any:
    return _boto3().client("s3", config=_config())


@functools.cache
def kms() -> Any:
    return _boto3().client("kms", config=_config())


@functools.cache
def sesv2() -> Any:
    return _boto3().client("sesv2", config=_config())


@functools.cache
def appconfig() -> Any:
    return _boto3().client("appconfig", config=_config())


@functools.cache
def appconfigdata() -> Any:
    return _boto3().client("appconfigdata", config=_config())


def reset_clients() -> None:
    """Drop cached clients (the local stack starts a fresh emulated account per run)."""
    for factory in (dynamodb, stepfunctions, sns, secretsmanager, s3, kms, sesv2, appconfig, appconfigdata):
        factory.cache_clear()
