"""The free-text scrubber over a corpus of what shoppers type (tests/unit/pii_cases.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cartpilot.audit.pii_detectors import fold, luhn_valid, resident_id_valid
from cartpilot.audit.privacy import MASK, mask_pii, scrub_text

CASES: dict[str, Any] = yaml.safe_load((Path(__file__).parent / "pii_cases.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES["must_mask"], ids=lambda case: case["text"])
def test_personal_data_is_masked(case: dict[str, Any]):
    scrubbed = scrub_text(case["text"])
    assert MASK in scrubbed
    for secret in case["secrets"]:
        assert secret not in scrubbed, scrubbed
    for kept in case.get("kept", []):
        assert kept in scrubbed, scrubbed


@pytest.mark.parametrize("text", CASES["must_keep"])
def test_what_is_not_personal_is_kept_as_written(text: str):
    assert scrub_text(text) == text


def test_text_around_a_mask_keeps_its_own_characters():
    # Folding is only for finding: full-width punctuation and spaces the shopper typed stay.
    assert scrub_text("电话：13912345678，谢谢！") == f"电话：{MASK}，谢谢！"


def test_folding_maps_every_character_back_to_the_original():
    folded, origin = fold("ａ＠ｂ　c")
    assert folded == "a@b c"
    assert origin == [0, 1, 2, 3, 4]


def test_luhn_and_identity_checks_refuse_near_misses():
    assert luhn_valid("4111 1111 1111 1111") and not luhn_valid("4111 1111 1111 1112")
    assert not luhn_valid("4111 1111 111")  # too short for a card
    assert resident_id_valid("110101199003074514") and not resident_id_valid("110101199003074515")


def test_audit_details_are_scrubbed_but_machine_values_are_not():
    masked = mask_pii({"goal": "ring tel13912345678", "planHash": "13912345678" * 3})
    assert masked == {"goal": f"ring tel{MASK}", "planHash": "13912345678" * 3}
