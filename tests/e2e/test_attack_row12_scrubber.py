"""Issue 11, row 12: the free-text scrubber missed phone numbers glued to a label or split by
slashes, underscores or ideographic spaces, card numbers split by slashes, a full-width ＠,
internationalised emails and street addresses. A goal carrying all of them reaches the audit
and the approval page with none of them left.
"""

from __future__ import annotations

import json

from tests.e2e.conftest import Stack

GOAL = (
    "Buy me 2 pairs of running shoes, size 42, and gift-wrap them. "
    "Reach me at tel13912345678, 139/1234/5679, 139_1234_5670 or 139\u30001234\u30005678; "
    "pay with 4111/1111/1111/1111; mail lin.wei＠example.com or 林伟@例子.中国; "
    "the office is Apt 4B, 350 Fifth Avenue; the old flat was 海淀区中关村大街1号院2号楼"
)
PERSONAL = (
    "13912345678", "1234/5679", "1234_5670", "1234\u30005678", "4111", "lin.wei", "例子.中国",
    "Fifth Avenue", "Apt 4B", "中关村大街", "2号楼",
)  # fmt: skip
NOTHING_BOUGHT = {"orders": [], "charges": [], "refunds": []}


def test_every_listed_form_is_masked_in_the_audit_and_on_the_page(stack: Stack) -> None:
    goal_id = stack.api.submit("shopper-0502", GOAL).json()["goalId"]
    link = stack.api.wait_for_approval_link(goal_id)

    page = stack.api.open_link(link).text
    assert "running shoes" in page
    for personal in PERSONAL:
        assert personal not in page, personal

    assert stack.api.decide(link, "reject").status_code == 200
    assert stack.api.wait_for(goal_id)["status"] == "REJECTED"
    assert stack.ledger() == NOTHING_BOUGHT
    audit = stack.api.audit(goal_id)
    assert audit["verification"]["valid"] is True
    records = json.dumps(audit["records"], ensure_ascii=False)
    assert "running shoes" in records and "size 42" in records  # what is not personal stays
    for personal in PERSONAL:
        assert personal not in records, personal
