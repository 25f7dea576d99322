"""CartPilot's platform profiles are valid against each version's published discovery schema, and say
what a merchant needs: our version, the older one we speak, our capabilities, handlers and keys."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from http_sfv import Dictionary
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

from cartpilot.commerce.platform_profile import (
    ORDER,
    ORDER_CANCEL,
    SANDBOX_TOKENIZER_NAME,
    platform_profile,
    profile_url,
    ucp_agent_header,
)
from cartpilot.commerce.signing_keys import SigningKeyRing, rotate

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / ".." / "shared" / "specs"
BASE = "https://cartpilot.example/v1"


def _schema_registry(source: Path) -> Registry:
    """The version's schemas under their ``$id``s, and under the URLs their relative ``$ref``s reach.

    Both versions publish the same ``$id``s, so each gets its own registry. Some ``$ref``s resolve,
    against the referring schema's ``$id``, to a URL no file claims (``../schemas/ucp.json`` from
    ``https://ucp.dev/schemas/discovery/profile.json``); those are found by their path under
    ``source``, dropping leading segments until one names a file.
    """
    by_id: dict[str, Path] = {}
    for path in source.rglob("*.json"):
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, dict) and isinstance(document.get("$id"), str):
            by_id[document["$id"]] = path

    def retrieve(uri: str) -> Resource:
        path = by_id.get(uri)
        if path is None:
            parts = uri.removeprefix("https://ucp.dev/").split("/")
            candidates = (source.joinpath(*parts[start:]) for start in range(len(parts)))
            path = next((candidate for candidate in candidates if candidate.is_file()), None)
        if path is None:
            raise NoSuchResource(ref=uri)
        return Resource.from_contents(json.loads(path.read_text(encoding="utf-8")))

    return Registry(retrieve=retrieve)  # type: ignore[call-arg]


@cache
def _validator(version: str, pointer: str) -> jsonschema.protocols.Validator:
    source = SPECS / f"ucp-{version}" / "source"
    assert source.is_dir(), f"the UCP {version} specification is expected at {source}"
    profile_schema = json.loads((source / "discovery" / "profile_schema.json").read_text(encoding="utf-8"))
    schema = {"$ref": f"{profile_schema['$id']}{pointer}"}
    validator_class = jsonschema.validators.validator_for(profile_schema)
    return validator_class(schema, registry=_schema_registry(source))


def schema_errors(document: dict[str, Any], version: str, pointer: str = "") -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in _validator(version, pointer).iter_errors(document)
    ]


@pytest.fixture(scope="module")
def ring() -> SigningKeyRing:
    return SigningKeyRing.from_secret(rotate(rotate(None, kid="k-old"), kid="k-new"))


def test_the_2026_04_08_profile_is_a_valid_platform_profile(ring: SigningKeyRing) -> None:
    document = platform_profile(BASE, "2026-04-08", ring)
    assert schema_errors(document, "2026-04-08", "#/$defs/platform_profile") == []


def test_the_2026_01_11_profile_is_valid_in_that_versions_shape(ring: SigningKeyRing) -> None:
    document = platform_profile(BASE, "2026-01-11", ring)
    assert schema_errors(document, "2026-01-11") == []


def test_the_validation_can_fail(ring: SigningKeyRing) -> None:
    """The schemas are really applied: each version refuses the other's shape and a broken key."""
    current = platform_profile(BASE, "2026-04-08", ring)
    legacy = platform_profile(BASE, "2026-01-11", ring)
    assert schema_errors(legacy, "2026-04-08", "#/$defs/platform_profile")
    assert schema_errors(current, "2026-01-11")
    broken = {**current, "signing_keys": [{"kid": "no-kty"}]}
    assert schema_errors(broken, "2026-04-08", "#/$defs/platform_profile")
    no_handlers = {**current, "ucp": {k: v for k, v in current["ucp"].items() if k != "payment_handlers"}}
    assert schema_errors(no_handlers, "2026-04-08", "#/$defs/platform_profile")
    # Nested references resolve too: a platform's capability needs its schema URL (capability.json),
    # a 2026-01-11 handler its config (shopping/types/payment_handler.json).
    unschematic = json.loads(json.dumps(current))
    del unschematic["ucp"]["capabilities"]["dev.ucp.shopping.checkout"][0]["schema"]
    assert schema_errors(unschematic, "2026-04-08", "#/$defs/platform_profile")
    unconfigured = json.loads(json.dumps(legacy))
    del unconfigured["payment"]["handlers"][0]["config"]
    assert schema_errors(unconfigured, "2026-01-11")


def test_the_current_profile_links_the_older_version_and_publishes_both_keys(ring: SigningKeyRing) -> None:
    ucp = platform_profile(BASE, "2026-04-08", ring)
    assert ucp["ucp"]["version"] == "2026-04-08"
    assert ucp["ucp"]["supported_versions"] == {"2026-01-11": f"{BASE}/.well-known/ucp/2026-01-11"}
    (service,) = ucp["ucp"]["services"]["dev.ucp.shopping"]
    assert service["transport"] == "rest" and service["version"] == "2026-04-08"
    assert [jwk["kid"] for jwk in ucp["signing_keys"]] == ["k-new", "k-old"]
    assert all(jwk["alg"] == "ES256" and "d" not in jwk for jwk in ucp["signing_keys"])


def test_the_leaf_profile_has_no_supported_versions(ring: SigningKeyRing) -> None:
    leaf = platform_profile(BASE, "2026-01-11", ring)
    assert leaf["ucp"]["version"] == "2026-01-11"
    assert "supported_versions" not in leaf["ucp"]
    assert leaf["signing_keys"] == ring.published()


def test_capabilities_name_what_cartpilot_uses_and_our_extension_extends_order(ring: SigningKeyRing) -> None:
    capabilities = platform_profile(BASE, "2026-04-08", ring)["ucp"]["capabilities"]
    assert {
        "dev.ucp.shopping.checkout",
        "dev.ucp.shopping.fulfillment",
        "dev.ucp.shopping.order",
        "dev.ucp.shopping.catalog.search",
        ORDER_CANCEL,
    } <= set(capabilities)
    (cancel,) = capabilities[ORDER_CANCEL]
    assert cancel["extends"] == ORDER
    # overview.md, "Spec URL Binding": a capability's spec lives at its namespace's authority.
    for name, (entry,) in capabilities.items():
        authority = ".".join(reversed(name.split(".")[:2]))
        assert entry["spec"].startswith(f"https://{authority}/"), name
    legacy = {
        entry["name"]: entry for entry in platform_profile(BASE, "2026-01-11", ring)["ucp"]["capabilities"]
    }
    assert legacy[ORDER_CANCEL]["extends"] == ORDER and "dev.ucp.shopping.checkout" in legacy


def test_the_sandbox_tokenizer_is_a_handler_we_can_fund(ring: SigningKeyRing) -> None:
    (handler,) = platform_profile(BASE, "2026-04-08", ring)["ucp"]["payment_handlers"][SANDBOX_TOKENIZER_NAME]
    assert handler["id"] == "sandbox_tokenizer" and handler["available_instruments"] == [{"type": "card"}]
    (legacy,) = platform_profile(BASE, "2026-01-11", ring)["payment"]["handlers"]
    assert (legacy["name"], legacy["id"]) == (SANDBOX_TOKENIZER_NAME, "sandbox_tokenizer")


def test_profile_urls_and_the_ucp_agent_header() -> None:
    assert profile_url(BASE + "/", "2026-04-08") == f"{BASE}/.well-known/ucp"
    assert profile_url(BASE, "2026-01-11") == f"{BASE}/.well-known/ucp/2026-01-11"
    header = ucp_agent_header(profile_url(BASE, "2026-04-08"))
    assert header == f'profile="{BASE}/.well-known/ucp"'
    parsed = Dictionary()
    parsed.parse(header.encode())
    assert parsed["profile"].value == f"{BASE}/.well-known/ucp"
    with pytest.raises(ValueError, match="2026-04-08 and 2026-01-11"):
        profile_url(BASE, "2025-01-01")
    with pytest.raises(ValueError):
        platform_profile(BASE, "2026-01-12", SigningKeyRing.from_secret(rotate(None)))
