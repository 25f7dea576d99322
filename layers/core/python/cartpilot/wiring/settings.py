"""Deployment settings read from the environment, once per warm container.

This module and the composition root beside it are the only code that reads the environment.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from cartpilot.kernel.errors import MissingSetting


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingSetting(f"environment variable {name} is not set")
    return value


def _seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise MissingSetting(
            f"environment variable {name} must be a number of seconds, not {raw!r}"
        ) from None
    if value <= 0:
        raise MissingSetting(f"environment variable {name} must be positive")
    return value


@dataclass(frozen=True)
class Settings:
    goals_table: str
    audit_table: str
    idempotency_table: str
    counters_table: str
    link_signing_secret_id: str
    # The plan-signing KMS key (its alias) and the Object Lock bucket of audit anchors and public keys.
    plan_signing_key_id: str
    audit_bucket: str
    notify_topic_arn: str | None
    # The brand's staff channel: staff-only approval links go there and nowhere else.
    staff_topic_arn: str | None
    state_machine_arn: str | None
    # The undo flow a shopper's undo request starts (the api only).
    undo_state_machine_arn: str | None
    approval_base_url: str | None
    # The brand's verified SES identity (address or domain): email receipts and the email fallback.
    ses_identity: str | None = None
    # The key ring of shopper view links: apart from the approval-link ring, so a function that signs
    # view links (notify, notices) cannot mint approval links.
    view_link_secret_id: str = ""


@functools.cache
def settings() -> Settings:
    """The tables and services a function uses; the brand is read apart (``brand_name``), since
    some callers need it before any table exists."""
    return Settings(
        goals_table=_require("GOALS_TABLE"),
        audit_table=_require("AUDIT_TABLE"),
        idempotency_table=_require("IDEMPOTENCY_TABLE"),
        counters_table=os.environ.get("COUNTERS_TABLE", ""),
        link_signing_secret_id=os.environ.get("LINK_SIGNING_SECRET_ID", ""),
        plan_signing_key_id=os.environ.get("PLAN_SIGNING_KEY_ID", ""),
        audit_bucket=os.environ.get("AUDIT_BUCKET", ""),
        notify_topic_arn=os.environ.get("NOTIFY_TOPIC_ARN") or None,
        staff_topic_arn=os.environ.get("STAFF_TOPIC_ARN") or None,
        state_machine_arn=os.environ.get("STATE_MACHINE_ARN") or None,
        undo_state_machine_arn=os.environ.get("UNDO_STATE_MACHINE_ARN") or None,
        approval_base_url=os.environ.get("APPROVAL_BASE_URL") or None,
        ses_identity=os.environ.get("SES_IDENTITY") or None,
        view_link_secret_id=os.environ.get("VIEW_LINK_SECRET_ID", ""),
    )


@dataclass(frozen=True)
class MerchantSettings:
    url: str | None
    credentials_secret_id: str | None
    credentials_header: str | None
    connect_timeout: float
    read_timeout: float
    breaker_reset: float


def merchant_location() -> tuple[str | None, str | None]:
    """MERCHANT_URL and MERCHANT_FEED: where the brand's default merchant and its product feed are,
    in place of brand.yaml's (the local stack's sandbox port, ``cartpilot local --merchant-url``)."""
    url = os.environ.get("MERCHANT_URL")
    return (url.rstrip("/") if url else None), (os.environ.get("MERCHANT_FEED") or None)


def merchant_settings(default_connect: float, default_read: float, default_reset: float) -> MerchantSettings:
    """Optional MERCHANT_URL and MERCHANT_CREDENTIALS_SECRET_ID (the stack's secret, read in place of
    the secret brand.yaml names; both apply to the brand's default merchant), MERCHANT_CREDENTIALS_HEADER
    (how to send that secret, ``Authorization`` as a Bearer token or ``X-API-Key``, when brand.yaml
    configures no credentials: ``cartpilot local --merchant-api-key-env``), and
    MERCHANT_CONNECT_TIMEOUT, MERCHANT_READ_TIMEOUT and MERCHANT_BREAKER_RESET_SECONDS (how long an
    open circuit fails fast), in seconds."""
    url = os.environ.get("MERCHANT_URL")
    return MerchantSettings(
        url=url.rstrip("/") if url else None,
        credentials_secret_id=os.environ.get("MERCHANT_CREDENTIALS_SECRET_ID") or None,
        credentials_header=os.environ.get("MERCHANT_CREDENTIALS_HEADER") or None,
        connect_timeout=_seconds("MERCHANT_CONNECT_TIMEOUT", default_connect),
        read_timeout=_seconds("MERCHANT_READ_TIMEOUT", default_read),
        breaker_reset=_seconds("MERCHANT_BREAKER_RESET_SECONDS", default_reset),
    )


def signing_keys_secret_id() -> str:
    """SIGNING_KEYS_SECRET_ID: the secret holding the UCP request-signing key ring."""
    return _require("SIGNING_KEYS_SECRET_ID")


def public_api_url() -> str:
    """PUBLIC_API_URL: the API's public base URL; our UCP profile is served under it."""
    return _require("PUBLIC_API_URL").rstrip("/")


def schedules_table() -> str:
    """SCHEDULES_TABLE: the schedules and their occurrences (only the functions that use them are told)."""
    return os.environ.get("SCHEDULES_TABLE", "")


def brand_name() -> str:
    """The brand this deployment serves; needs none of the table settings."""
    return os.environ.get("CARTPILOT_BRAND", "sandbox")


def brands_dir() -> Path | None:
    configured = os.environ.get("CARTPILOT_BRANDS_DIR")
    return Path(configured) if configured else None


def llm_environment() -> dict[str, str]:
    """Where a model planner finds its API key (the variable the brand names)."""
    return dict(os.environ)


def reset_settings() -> None:
    settings.cache_clear()
