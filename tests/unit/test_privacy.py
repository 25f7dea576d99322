from cartpilot.audit.privacy import describe_recipient, mask_pii, scrub_text
from cartpilot.commerce.ports import Address, Recipient


def test_known_fields_are_erased_wherever_they_are():
    masked = mask_pii(
        {
            "recipient": {
                "name": "Zhang Min",
                "phone": "+86 139",
                "address": {"line1": "7 Road", "city": "Beijing"},
            }
        }
    )
    assert masked == {
        "recipient": {"name": "*****", "phone": "*****", "address": {"line1": "*****", "city": "Beijing"}}
    }


def test_free_text_loses_phones_emails_and_cards_but_keeps_dates_and_prices():
    text = "call +86 139 1088 2266 or zm@example.com, card 4242 4242 4242 4242, by 2027-02-05 for 719.00 CNY size 42"
    scrubbed = scrub_text(text)
    for secret in ("2266", "zm@example.com", "4242"):
        assert secret not in scrubbed
    for kept in ("2027-02-05", "719.00 CNY", "size 42"):
        assert kept in scrubbed


def test_recipient_description_is_recognisable_not_findable():
    recipient = Recipient(name="Zhang Min", phone="+86 139 1088 2266",
                          address=Address(line1="7 Gongti North Road", city="Beijing", region="BJ", country="CN"))  # fmt: skip
    described = describe_recipient(recipient)
    assert described == "Zhang M., Beijing, BJ, CN (•••• 2266)"
    assert "Gongti" not in described
