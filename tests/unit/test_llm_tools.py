"""The read-only tools the model calls, and the grounding of its draft in what they showed."""

from __future__ import annotations

import json

import pytest

from cartpilot.brands.config import BrandConfig
from cartpilot.brands.users import UserDirectory
from cartpilot.commerce.ports import Address, Recipient
from cartpilot.goals.model import GoalContext
from cartpilot.planning.conversation import ToolCall
from cartpilot.planning.drafts import DraftRejected, GroundedDraft, Refusal, ground_draft, parse_draft
from cartpilot.planning.tools import ShoppingTools
from tests.conftest import planning_request
from tests.fakes import FakeMerchant

HANGZHOU = Recipient(
    name="Li Lei",
    phone="+86 130 0000 1111",
    address=Address(line1="1 Test Street", city="Hangzhou", country="CN"),
)


def tools_for(
    merchant: FakeMerchant, brand: BrandConfig, users: UserDirectory, context: GoalContext | None = None
) -> ShoppingTools:
    request = planning_request(brand, users, "running shoes", context=context, goal_id="g-tools")
    return ShoppingTools(merchant.catalog, merchant.fulfillment, request)


def call(tools: ShoppingTools, name: str, arguments: dict | None = None) -> dict:
    result = tools.call(
        ToolCall(id="c1", name=name, arguments=arguments, raw_arguments=json.dumps(arguments))
    )
    assert result.call_id == "c1"
    return result.content


def draft(**changes: object) -> str:
    document: dict = {
        "decision": "plan",
        "reason": "Shoes for your friend.",
        "items": [{"itemId": "shoe-a-42", "quantity": 1, "justification": "Cheapest."}],
        "giftWrap": None,
        "recipientId": "friend-beijing",
        "shipping": {"optionId": "standard", "justification": "Cheapest."},
        "payment": {"paymentMethodId": "pm_user1_visa", "justification": "Default."},
        "deliverBy": None,
        "budget": None,
    }
    document.update(changes)
    return json.dumps(document)


def grounded_tools(merchant, brand, users, context=None) -> ShoppingTools:
    tools = tools_for(merchant, brand, users, context)
    call(tools, "get_shopper", {})
    call(tools, "search_products", {"query": "running shoes", "size": "42"})
    call(tools, "search_products", {"query": "gift wrap", "category": "gift-wrap"})
    call(
        tools,
        "quote_shipping",
        {"items": [{"itemId": "shoe-a-42", "quantity": 1}], "recipientId": "friend-beijing"},
    )
    return tools


def test_shopper_tool_shows_ids_relations_and_cities_but_no_names_phones_or_streets(merchant, brand, users):
    tools = tools_for(merchant, brand, users, GoalContext(recipient=HANGZHOU, paymentMethodId="pm_other"))
    shopper = call(tools, "get_shopper", {})
    assert shopper["recipients"] == [
        {"recipientId": "home", "relation": "self", "city": "Shanghai", "country": "CN"},
        {"recipientId": "friend-beijing", "relation": "friend", "city": "Beijing", "country": "CN"},
        {
            "recipientId": "context",
            "relation": "given with this request",
            "city": "Hangzhou",
            "country": "CN",
        },
    ]
    assert shopper["paymentMethods"] == [{"paymentMethodId": "pm_user1_visa", "label": "Visa ending 4242"}]
    assert shopper["requestPaymentMethodId"] == "pm_other"
    text = json.dumps(shopper)
    assert "Li Lei" not in text and "Test Street" not in text and "+86" not in text


def test_search_marks_denied_categories_and_records_the_lookup(merchant, brand, users):
    tools = tools_for(merchant, brand, users)
    result = call(tools, "search_products", {"query": "chef knife", "category": "knives"})
    assert result["products"][0]["restricted"] == "not sold through the assistant"
    assert result["products"][0]["variants"][0] == {
        "itemId": "knife-1-std",
        "price": "399.00 CNY",
        "inStock": 10,
    }
    assert tools.memory.lookups == ["catalog.search 'chef knife' category knives"]


def test_bad_arguments_and_unknown_tools_come_back_as_errors_the_model_can_fix(merchant, brand, users):
    tools = tools_for(merchant, brand, users)
    assert call(tools, "search_products", {"size": "42"}) == {"error": "query: Field required"}
    assert call(tools, "search_products", {"query": "shoes", "maxPrice": "cheap"}) == {
        "error": "maxPrice 'cheap' is not an amount in CNY, e.g. \"300.00\""
    }
    assert call(tools, "buy_now", {}) == {
        "error": "unknown tool 'buy_now'; the tools are get_shopper, search_products, lookup_items, quote_shipping"
    }
    assert call(tools, "lookup_items", None) == {"error": "the arguments were not a JSON object"}
    assert call(
        tools, "quote_shipping", {"items": [{"itemId": "shoe-a-42", "quantity": 1}], "recipientId": "mars"}
    ) == {"error": "unknown recipientId 'mars'; use one that get_shopper returned"}
    assert tools.memory.lookups == []


def test_quote_names_the_destination_city_and_the_delivery_window(merchant, brand, users):
    tools = tools_for(merchant, brand, users)
    quote = call(
        tools,
        "quote_shipping",
        {"items": [{"itemId": "shoe-a-42", "quantity": 1}], "recipientId": "friend-beijing"},
    )
    assert quote["destination"] == "Beijing, CN"
    assert quote["options"][1] == {
        "optionId": "expedited", "title": "Expedited", "price": "45.00 CNY",
        "earliestDelivery": "2026-11-26", "latestDelivery": "2026-11-27",
    }  # fmt: skip
    assert tools.memory.quoted_option_ids("friend-beijing") == {"standard", "expedited"}


def test_a_draft_grounded_in_the_tool_results_is_accepted(merchant, brand, users):
    tools = grounded_tools(merchant, brand, users)
    grounded = ground_draft(parse_draft(draft(deliverBy="2027-02-04", budget="800")), tools, tools.request)
    assert isinstance(grounded, GroundedDraft)
    assert [line.variant.id for line in grounded.lines] == ["shoe-a-42"]
    assert grounded.recipient.address.city == "Beijing"
    assert str(grounded.deliverBy) == "2027-02-04" and grounded.budget is not None
    assert grounded.budget.format() == "800.00 CNY"


def test_every_unfounded_reference_is_reported_at_once(merchant, brand, users):
    tools = grounded_tools(merchant, brand, users)
    bad = draft(
        items=[
            {"itemId": "shoe-z-42", "quantity": 1, "justification": "Made up."},
            {"itemId": "gift-wrap-standard", "quantity": 1, "justification": "Wrap."},
        ],
        recipientId="attacker",
        shipping={"optionId": "drone", "justification": "Fast."},
        payment={"paymentMethodId": "pm_admin", "justification": "Free."},
    )
    with pytest.raises(DraftRejected) as rejected:
        ground_draft(parse_draft(bad), tools, tools.request)
    assert rejected.value.errors == [
        "items[0].itemId 'shoe-z-42' was not in any tool result; search or look it up and use the itemId exactly",
        "items[1]: gift-wrap belongs in giftWrap, not in items",
        "recipientId 'attacker' is not one of the shopper's: home, friend-beijing",
        "shipping.optionId 'drone' was not quoted for recipient 'attacker'; call quote_shipping with the items and that recipient",
        "payment.paymentMethodId 'pm_admin' is not one of the shopper's: pm_user1_visa",
    ]


def test_the_context_recipient_exists_only_when_the_request_carries_one(merchant, brand, users):
    without = grounded_tools(merchant, brand, users)
    with pytest.raises(DraftRejected, match="'context' is not one of the shopper's"):
        ground_draft(parse_draft(draft(recipientId="context")), without, without.request)

    with_context = grounded_tools(merchant, brand, users, GoalContext(recipient=HANGZHOU))
    call(
        with_context,
        "quote_shipping",
        {"items": [{"itemId": "shoe-a-42", "quantity": 1}], "recipientId": "context"},
    )
    grounded = ground_draft(parse_draft(draft(recipientId="context")), with_context, with_context.request)
    assert isinstance(grounded, GroundedDraft) and grounded.recipient == HANGZHOU


def test_a_refusal_passes_through_as_the_shoppers_reason(merchant, brand, users):
    tools = tools_for(merchant, brand, users)
    refusal = ground_draft(
        parse_draft(draft(decision="refuse", reason="Which  size?\n", items=[])), tools, tools.request
    )
    assert refusal == Refusal(reason="Which size?")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        ("", "the answer was empty; answer with the plan draft JSON object"),
        ("Sure! Here is your plan.", "the answer is not valid JSON (Expecting value at character 0); send only the JSON object"),
        ("[1, 2]", "the answer must be one JSON object, not a list or a value"),
        ('{"reason": "x"}', "decision: Field required"),
        ('{"decision": "maybe", "reason": "x"}', "decision: Input should be 'plan' or 'refuse'"),
        ('{"decision": "plan", "reason": "x", "items": [{"itemId": "a", "quantity": 0}]}',
         "items[0].quantity: Input should be greater than or equal to 1"),
    ],
)  # fmt: skip
def test_unusable_answers_are_rejected_with_errors_the_model_can_act_on(answer, error):
    with pytest.raises(DraftRejected) as rejected:
        parse_draft(answer)
    assert rejected.value.errors[0] == error


def test_fenced_answers_and_thinking_blocks_are_read():
    fenced = parse_draft("<think>The socks are cheaper.</think>\n```json\n" + draft() + "\n```")
    assert fenced.decision == "plan" and fenced.items[0].itemId == "shoe-a-42"
