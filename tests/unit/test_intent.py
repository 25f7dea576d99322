from datetime import date

import pytest

from cartpilot.kernel.money import Money
from cartpilot.planning.intent import GoalNotUnderstood, QuantityNotPlannable, parse_goal
from tests.fakes import TODAY


def parse(goal: str):
    return parse_goal(goal, today=TODAY, currency="CNY")


def test_seed_goal_in_english():
    intent = parse("Get my friend running shoes, size 42, gift-wrap them and ship to Beijing before Feb 5")
    assert (intent.keywords, intent.size, intent.giftWrap) == (("running", "shoes"), "42", True)
    assert (intent.relation, intent.person, intent.city) == ("friend", "friend", "Beijing")
    # "before Feb 5" is the next Feb 5, and the parcel must arrive the day before at the latest.
    assert intent.deliverBy == date(2027, 2, 4)
    assert (intent.quantity, intent.quantityText) == (1, None)


def test_seed_goal_in_chinese():
    intent = parse("给我朋友买一双42码的黑色跑鞋，礼品包装，2月5日前送到北京，预算800元")
    assert (intent.keywords, intent.size, intent.color) == (("跑鞋",), "42", "black")
    assert intent.giftWrap and intent.relation == "friend" and intent.city == "Beijing"
    assert intent.deliverBy == date(2027, 2, 4)
    assert intent.budget == Money(amount_minor=80000, currency="CNY")
    assert (intent.quantity, intent.quantityText) == (1, "一双")


@pytest.mark.parametrize(
    ("goal", "deadline"),
    [
        ("running socks by 2026-12-10", date(2026, 12, 10)),
        ("running socks before 2026-12-10", date(2026, 12, 9)),
        ("running socks by Dec 3", date(2026, 12, 3)),
        ("running socks by the 3rd of January", date(2027, 1, 3)),
        ("跑步袜 12月3日送到", date(2026, 12, 3)),
        ("running socks", None),
    ],
)
def test_deadlines(goal, deadline):
    assert parse(goal).deliverBy == deadline


@pytest.mark.parametrize(
    ("goal", "budget"),
    [
        ("running shoes under 800 CNY", Money(amount_minor=80000, currency="CNY")),
        ("running shoes, budget of ¥650.50", Money(amount_minor=65050, currency="CNY")),
        ("running shoes for at most $120", Money(amount_minor=12000, currency="USD")),
        ("跑鞋 不超过600元", Money(amount_minor=60000, currency="CNY")),
        ("跑鞋 500元以内", Money(amount_minor=50000, currency="CNY")),
    ],
)
def test_budgets(goal, budget):
    intent = parse(goal)
    # A budget's number is never read as a quantity.
    assert (intent.budget, intent.quantity) == (budget, 1)


@pytest.mark.parametrize(
    ("goal", "quantity"),
    [
        ("Buy two pairs of running socks and ship them to my home address", 2),
        ("Buy 20 pairs of socks", 20),
        ("buy 2 t-shirts", 2),
        ("twelve yoga mats", 12),
        ("twenty candles", 20),
        ("a dozen candles", 12),
        ("half a dozen mugs", 6),
        ("a couple of lip balms", 2),
        ("USB-C cable x3", 3),
        ("qty 4 chargers", 4),
        ("给我买两双跑步袜", 2),
        ("十双袜子", 10),
        ("三件T恤", 3),
        ("十二本书", 12),
        ("二十个马克杯", 20),
        ("买一打蜡烛", 12),
        ("半打马克杯", 6),
        ("防晒霜 两瓶", 2),
    ],
)
def test_quantities_written_as_digits_words_and_chinese_numerals(goal, quantity):
    intent = parse(goal)
    assert intent.quantity == quantity and intent.quantityText is not None


@pytest.mark.parametrize(
    "goal",
    ["a 1000-piece puzzle", "a 20L backpack", "buy a 1.5 litre water bottle", "buy 1.5l water", "a power bank 10000 mAh", "a 65W charger", "a water bottle 750 ml",
     "iPhone 15 case", "running shoes size 44", "跑鞋 44码"],
)  # fmt: skip
def test_numbers_that_describe_the_product_are_not_quantities(goal):
    assert parse(goal).quantity == 1 and parse(goal).quantityText is None


@pytest.mark.parametrize(
    ("goal", "reason"),
    [
        ("buy -1 running shoes", "the goal asks for '-1': a quantity must be at least 1"),
        ("Buy 0 yoga mats", "the goal asks for '0': a quantity must be at least 1"),
        ("zero mugs", "the goal asks for 'zero': a quantity must be at least 1"),
        ("Buy 21 tees", "the goal asks for 21 ('21'); a plan buys at most 20 of an item"),
        ("twenty-one mugs", "the goal asks for 21 ('twenty-one'); a plan buys at most 20 of an item"),
        ("two dozen mugs", "the goal asks for 24 ('two dozen'); a plan buys at most 20 of an item"),
        ("三十双袜子", "the goal asks for 30 ('三十双'); a plan buys at most 20 of an item"),
        ("两打袜子", "the goal asks for 24 ('两打'); a plan buys at most 20 of an item"),
        (
            "Buy me two million running socks",
            "the goal asks for 2000000 ('two million'); a plan buys at most 20 of an item",
        ),
        ("a hundred mugs", "the goal asks for 100 ('a hundred'); a plan buys at most 20 of an item"),
        ("two hundred mugs", "the goal asks for 200 ('two hundred'); a plan buys at most 20 of an item"),
        (
            "one hundred and five mugs",
            "the goal asks for 105 ('one hundred and five'); a plan buys at most 20 of an item",
        ),
        ("buy 3 thousand mugs", "the goal asks for 3000 ('3 thousand'); a plan buys at most 20 of an item"),
        ("两百万双袜子", "the goal asks for 2000000 ('两百万双'); a plan buys at most 20 of an item"),
        ("一千个马克杯", "the goal asks for 1000 ('一千个'); a plan buys at most 20 of an item"),
        ("3万双袜子", "the goal asks for 30000 ('3万双'); a plan buys at most 20 of an item"),
        ("a few yoga mats", "the goal asks for 'a few': say how many (1 to 20)"),
        ("several mugs for the office", "the goal asks for 'several': say how many (1 to 20)"),
        ("买几双袜子", "the goal asks for '几双': say how many (1 to 20)"),
        ("get 1,000 pairs of running socks", "the goal asks for '1,000': write how many as a plain whole number (1 to 20)"),
        ("get 1e3 running socks", "the goal asks for '1e3': write how many as a plain whole number (1 to 20)"),
        ("Buy me 3.5 pairs of running socks", "the goal asks for '3.5': write how many as a plain whole number (1 to 20)"),
        ("get ½ dozen running socks", "the goal asks for '½': write how many as a plain whole number (1 to 20)"),
        ("buy 3/4 pairs of socks", "the goal asks for '3/4': write how many as a plain whole number (1 to 20)"),
    ],
)  # fmt: skip
def test_a_quantity_no_plan_can_carry_is_refused_never_read_as_one(goal, reason):
    with pytest.raises(QuantityNotPlannable) as refused:
        parse(goal)
    assert str(refused.value) == reason
    assert isinstance(refused.value, GoalNotUnderstood)


@pytest.mark.parametrize(
    ("goal", "wanted", "declined"),
    [
        ("running socks, gift-wrapped", True, False),
        ("running socks, no gift wrap", False, True),
        ("running socks without gift wrapping", False, True),
        ("running socks, don't wrap them", False, True),
        ("跑步袜，礼品包装", True, False),
        ("跑步袜，不要礼品包装", False, True),
        ("跑步袜，不用包装", False, True),
        ("跑步袜，不需要礼物包装", False, True),
        ("running socks", False, False),
    ],
)
def test_gift_wrap_and_its_negation(goal, wanted, declined):
    intent = parse(goal)
    assert (intent.giftWrap, intent.giftWrapDeclined) == (wanted, declined)
    assert "wrap" not in intent.keywords and "包装" not in intent.keywords


@pytest.mark.parametrize(
    ("goal", "size"),
    [
        ("running shoes size 42.5", "42.5"),
        ("running shoes EU 43", "43"),
        ("跑鞋 43码", "43"),
        ("a tee in size M", "M"),
        ("a hoodie, size xl", "XL"),
        ("a hoodie in medium size", "M"),
        ("running shorts XS", "XS"),
        ("T恤 M码", "M"),
        ("卫衣 XL号", "XL"),
        ("一件中号的卫衣", "M"),
        ("一件加大号的卫衣", "XL"),
        ("running jacket, extra large", "XL"),
        ("running jacket, extra-large", "XL"),
        ("a running jacket in x-large", "XL"),
        ("a hoodie, extra small", "XS"),
        ("a hoodie, double extra large", "XXL"),
        ("a hoodie, xx-large", "XXL"),
        ("a hoodie, size extra large", "XL"),
        ("a t-shirt", None),
    ],
)
def test_numeric_and_letter_sizes(goal, size):
    assert parse(goal).size == size


@pytest.mark.parametrize(
    ("goal", "colour"),
    [("a black tee", "black"), ("a Gray hoodie", "grey"), ("灰色的卫衣", "grey"), ("藏青色袜子", "navy")],
)
def test_colours_in_english_and_chinese(goal, colour):
    assert parse(goal).color == colour


def test_wine_is_not_a_colour_of_the_word_red_in_chinese():
    # 红酒 (red wine) and 白酒 (baijiu) are products, not colours.
    assert (parse("买一瓶红酒").color, parse("买一瓶红酒").keywords) == (None, ("红酒",))


@pytest.mark.parametrize(
    ("goal", "relation", "person", "city", "place"),
    [
        ("running shoes for my sister in Shanghai", "family", "sister", "Shanghai", None),
        ("给我妹妹买跑鞋", "family", "sister", None, None),
        ("给女朋友买防晒霜", "partner", "girlfriend", None, None),
        ("a kite for my mom", "family", "mother", None, None),
        ("running socks for me", "self", "self", None, None),
        ("send a kite to my nephew in Xi'an", "family", "nephew", "Xi'an", None),
        ("Ship a blue backpack to Guilin", None, None, None, "Guilin"),
        ("送到桂林的书包", None, None, None, "桂林"),
        ("get running socks, ship to 12 Baker Street", None, None, None, "12 Baker Street"),
        ("running socks, deliver them to 5 Main St", None, None, None, "5 Main St"),
    ],
)
def test_who_and_where(goal, relation, person, city, place):
    intent = parse(goal)
    assert (intent.relation, intent.person, intent.city, intent.place) == (relation, person, city, place)


@pytest.mark.parametrize(
    ("goal", "keywords"),
    [
        ("Buy me a bottle of wine", ("wine",)),
        ("Ship a blue backpack to Guilin", ("backpack",)),
        ("a 20L backpack for my friend", ("20l", "backpack")),
        ("我想买一个蓝色的双肩包送给妹妹", ("双肩包",)),
        ("please do something nice for me", ()),
    ],
)
def test_the_product_words_are_what_is_left(goal, keywords):
    assert parse(goal).keywords == keywords


@pytest.mark.parametrize(
    ("goal", "excluded"),
    [
        ("running shoes size 42, not black", ("black",)),
        ("no black running shoes", ("black",)),
        ("running shoes, anything but black", ("black",)),
        ("running shoes, not black or white", ("black", "white")),
        ("跑鞋 42码，不要黑色的", ("black",)),
        ("42码的跑鞋，不要黑的", ("black",)),
    ],
)
def test_a_colour_the_goal_rules_out_is_excluded_never_selected(goal, excluded):
    intent = parse(goal)
    assert (intent.color, intent.excludedColors) == (None, excluded)
    assert not {"black", "not", "黑", "不要"} & set(intent.keywords)


def test_a_wine_is_not_a_colour_ruled_out():
    assert (parse("不要白酒").excludedColors, parse("a bottle of red wine, not white").excludedColors) == (
        (),
        ("white",),
    )


@pytest.mark.parametrize(
    ("goal", "reason"),
    [
        ("a pair size 42 and a pair size 43", "one size per goal: the goal names size 42 and size 43"),
        ("running shoes 42码和43码", "one size per goal: the goal names size 42 and size 43"),
        ("a black tee and a white tee", "one colour per goal: the goal names black and white"),
    ],
)
def test_two_sizes_or_colours_for_one_product_are_refused_never_one_dropped(goal, reason):
    with pytest.raises(GoalNotUnderstood, match=reason):
        parse(goal)


def test_the_same_size_written_twice_is_one_size():
    assert parse("running shoes size 42 (EU 42)").size == "42"
