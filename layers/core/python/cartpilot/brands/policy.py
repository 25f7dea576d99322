"""Brand policies on Cedar: load and check ``policies.cedar``, and ask it how an order may run.

Each brand ships ``brands/<brand>/policies.cedar`` and ``policies.cedarschema`` (Cedar's
human-readable schema format). The policies are parsed and validated against the schema when
they load; any problem is a ``PolicyFileError`` naming the file and line, raised at start-up,
never mid-order. The comments at the top of the sandbox brand's ``policies.cedar`` explain
how the three actions map to risk tiers; ``decide`` is that mapping.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import cedarpy

from cartpilot.brands.activity import RecentActivity
from cartpilot.brands.categories import restriction_for
from cartpilot.brands.config import BrandConfig, BrandConfigError, brand_dir
from cartpilot.brands.rates import NoCurrencyRate, in_brand_currency
from cartpilot.brands.users import UserProfile
from cartpilot.kernel.money import Money
from cartpilot.plans.model import PaymentCompleteStep, Plan
from cartpilot.plans.verdicts import Finding, RiskTier

POLICY_FILE = "policies.cedar"
# The finding for a plan priced in a currency the brand has no rate for (decided here, not in Cedar).
CURRENCY_RATE_POLICY = "brand.currency-rate"
SCHEMA_FILE = "policies.cedarschema"
NAMESPACE = "CartPilot"


class PolicyAction(StrEnum):
    """The three ways an order may run, from least to most friction."""

    AUTO_EXECUTE = "AutoExecute"
    EXECUTE_WITH_APPROVAL = "ExecuteWithApproval"
    EXECUTE_WITH_STRONG_APPROVAL = "ExecuteWithStrongApproval"
    # Not a rung of the ladder: asked beside it, forbidden when the approval needs a one-time code.
    APPROVE_WITHOUT_CODE = "ApproveWithoutCode"


_LADDER: tuple[tuple[PolicyAction, RiskTier], ...] = (
    (PolicyAction.AUTO_EXECUTE, RiskTier.AUTO),
    (PolicyAction.EXECUTE_WITH_APPROVAL, RiskTier.APPROVAL),
    (PolicyAction.EXECUTE_WITH_STRONG_APPROVAL, RiskTier.STRONG_APPROVAL),
)
# A forbid that matched an action leaves at best the next one up the ladder.
_TIER_WHEN_FORBIDDEN = {
    PolicyAction.AUTO_EXECUTE: RiskTier.APPROVAL,
    PolicyAction.EXECUTE_WITH_APPROVAL: RiskTier.STRONG_APPROVAL,
    PolicyAction.EXECUTE_WITH_STRONG_APPROVAL: RiskTier.DENY,
}
# The action scopes a forbid may have: it must forbid every less strict action too. A forbid of
# ApproveWithoutCode (step-up) must forbid AutoExecute as well: a code is never asked of nobody.
_LADDER_SCOPES = (
    frozenset(action for action, _ in _LADDER[:1]),
    frozenset(action for action, _ in _LADDER[:2]),
    frozenset(action for action, _ in _LADDER),
)
_FORBID_SCOPES = _LADDER_SCOPES + tuple(
    scope | {PolicyAction.APPROVE_WITHOUT_CODE} for scope in _LADDER_SCOPES
)
# Where a brand sets no step-up threshold, no total reaches it (Cedar's Long is 64-bit).
_NO_THRESHOLD = 2**63 - 1

REASON_PLACEHOLDERS = frozenset(
    {
        "total",
        "perOrder",
        "perDay",
        "confirmationThreshold",
        "strongApprovalThreshold",
        "stepUpThreshold",
        "maxOrdersPerDay",
        "homeCountry",
        "recipientCountry",
        "spendLast24h",
        "ordersLast24h",
        "paymentMethodAgeDays",
        "trustLevel",
        "pricedIn",
    }
)
_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")
_QUOTED = re.compile(r"`([^`]+)`")


class PolicyFileError(BrandConfigError):
    """A brand's policy or schema file is missing, does not parse, or breaks the house rules."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        super().__init__(f"{path}, line {line}: {message}" if line else f"{path}: {message}")


@dataclass(frozen=True)
class BrandPolicy:
    """One policy of the file, as the verdict names it."""

    cedar_id: str  # the positional id Cedar gives it (policy0, policy1, ...)
    id: str  # its @id annotation
    reason: str  # its @reason annotation, with placeholders
    effect: Literal["permit", "forbid"]
    approver: Literal["user", "staff"]
    line: int
    actions: frozenset[PolicyAction]


@dataclass(frozen=True)
class BrandPolicies:
    """A brand's parsed, schema-checked policies, ready to evaluate."""

    policy_file: Path
    schema_file: Path
    policy_set: cedarpy.PolicySet
    schema: cedarpy.Schema
    by_cedar_id: Mapping[str, BrandPolicy]

    def __iter__(self) -> Iterator[BrandPolicy]:
        return iter(self.by_cedar_id.values())

    def named(self, policy_id: str) -> BrandPolicy:
        for policy in self:
            if policy.id == policy_id:
                return policy
        raise KeyError(policy_id)


# ---- Loading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Statement:
    text: str
    text_line: int  # where the text starts (the line of the ';' before it)
    line: int  # where its first token is (its first annotation, usually)


def _split_statements(text: str) -> tuple[list[_Statement], _Statement | None]:
    """Splits policy text at each top-level ``;``, skipping comments and strings.

    Cedar reports parse and validation errors without source positions, by positional policy
    id at best; splitting the text the same way Cedar numbers its policies lets an error name
    the line. Returns the statements and any unterminated text after the last one.
    """
    statements: list[_Statement] = []
    start = 0
    start_line = 1
    first_token_line: int | None = None
    line = 1
    i = 0
    in_string = False
    while i < len(text):
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
                line += text[i : i + 1] == "\n"
            elif char == '"':
                in_string = False
            elif char == "\n":
                line += 1
        elif char == "/" and text.startswith("//", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        elif char == "\n":
            line += 1
        elif not char.isspace():
            if first_token_line is None:
                first_token_line = line
            if char == '"':
                in_string = True
            elif char == ";":
                statements.append(_Statement(text[start : i + 1], start_line, first_token_line))
                start, start_line = i + 1, line
                first_token_line = None
        i += 1
    rest = _Statement(text[start:], start_line, first_token_line) if first_token_line is not None else None
    return statements, rest


def _line_of_quoted_token(statement: _Statement, message: str, skip: str = "") -> int:
    """The line, inside the statement, of the first `quoted` name in Cedar's message that occurs there."""
    for token in _QUOTED.findall(message):
        if token == skip:
            continue
        name = token.rsplit("::", 1)[-1].strip('"')
        pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])")
        for offset, code in enumerate(statement.text.split("\n")):
            if pattern.search(code.split("//", 1)[0]):
                return statement.text_line + offset
    return statement.line


def _load_schema(path: Path, text: str) -> cedarpy.Schema:
    try:
        return cedarpy.Schema.from_str(text)
    except ValueError as exc:
        message = str(exc)
        line = _schema_error_line(text, message)
        raise PolicyFileError(path, line, f"the schema does not parse: {message}") from exc


def _schema_error_line(text: str, message: str) -> int | None:
    if "end of input" in message:
        return text.rstrip().count("\n") + 1
    for token in _QUOTED.findall(message) + re.findall(r":\s*([A-Za-z_][A-Za-z0-9_:]*)\s*$", message):
        pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(token)}(?![A-Za-z0-9_])")
        for number, code in enumerate(text.split("\n"), start=1):
            if pattern.search(code.split("//", 1)[0]):
                return number
    return None


def _parse_policies(path: Path, text: str) -> tuple[cedarpy.PolicySet, list[_Statement]]:
    statements, rest = _split_statements(text)
    if rest is not None:
        raise PolicyFileError(path, rest.line, "the policy does not end with ';'")
    try:
        policy_set = cedarpy.PolicySet.from_str(text)
    except ValueError as exc:
        for statement in statements:
            try:
                cedarpy.PolicySet.from_str(statement.text)
            except ValueError as own:
                line = _line_of_quoted_token(statement, str(own))
                raise PolicyFileError(path, line, f"the policy does not parse: {own}") from exc
        raise PolicyFileError(path, None, f"the policies do not parse: {exc}") from exc
    templates = policy_set.templates()
    if templates:
        index = int(str(templates[0]["id"]).removeprefix("policy") or -1)
        where = statements[index].line if 0 <= index < len(statements) else None
        raise PolicyFileError(path, where, "templates (?principal, ?resource) are not supported")
    return policy_set, statements


def _action_scope(scope: dict[str, Any]) -> frozenset[PolicyAction]:
    op = scope.get("op")
    if op == "All":
        return frozenset(PolicyAction)
    entities = scope.get("entities") or ([scope["entity"]] if "entity" in scope else [])
    return frozenset(PolicyAction(entity["id"]) for entity in entities if entity["id"] in set(PolicyAction))


def _describe_policies(path: Path, text: str, statements: list[_Statement]) -> dict[str, BrandPolicy]:
    document = json.loads(cedarpy.policies_to_json_str(text))
    static: dict[str, dict[str, Any]] = document["staticPolicies"]
    policies: dict[str, BrandPolicy] = {}
    seen: dict[str, int] = {}
    for index, statement in enumerate(statements):
        cedar_id = f"policy{index}"
        body = static[cedar_id]
        annotations: dict[str, str | None] = body.get("annotations", {})
        policy_id = annotations.get("id")
        if not policy_id:
            raise PolicyFileError(path, statement.line, 'the policy has no @id("...") annotation')
        if policy_id in seen:
            raise PolicyFileError(
                path,
                statement.line,
                f"@id {policy_id!r} is already used by the policy at line {seen[policy_id]}",
            )
        seen[policy_id] = statement.line
        reason = annotations.get("reason")
        if not reason:
            raise PolicyFileError(
                path, statement.line, f'{policy_id}: the policy has no @reason("...") annotation'
            )
        unknown = sorted(set(_PLACEHOLDER.findall(reason)) - REASON_PLACEHOLDERS)
        if unknown:
            raise PolicyFileError(
                path, statement.line, f"{policy_id}: @reason names unknown values {', '.join(unknown)}"
            )
        approver = annotations.get("approver") or "user"
        if approver not in ("user", "staff"):
            raise PolicyFileError(path, statement.line, f'{policy_id}: @approver must be "user" or "staff"')
        effect = body["effect"]
        actions = _action_scope(body["action"])
        if effect == "forbid" and actions not in _FORBID_SCOPES:
            raise PolicyFileError(
                path,
                statement.line,
                f"{policy_id}: a forbid must also forbid every less strict action "
                f"({', '.join(action.value for action, _ in _LADDER)}); "
                f"this one forbids {', '.join(sorted(actions)) or 'none of them'}",
            )
        policies[cedar_id] = BrandPolicy(
            cedar_id=cedar_id,
            id=policy_id,
            reason=reason,
            effect=effect,
            approver="staff" if approver == "staff" else "user",
            line=statement.line,
            actions=actions,
        )
    return policies


def load_policies_from(directory: Path) -> BrandPolicies:
    """Reads, parses and validates a brand's policies; every problem names its file and line."""
    policy_path, schema_path = directory / POLICY_FILE, directory / SCHEMA_FILE
    texts: dict[Path, str] = {}
    for path in (policy_path, schema_path):
        try:
            texts[path] = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise PolicyFileError(path, None, "not found") from exc
    schema = _load_schema(schema_path, texts[schema_path])
    text = texts[policy_path]
    policy_set, statements = _parse_policies(policy_path, text)
    if len(statements) != len(policy_set):
        raise PolicyFileError(policy_path, None, "the file could not be split into its policies")
    result = cedarpy.validate_policies(text, schema)
    if not result.validation_passed:
        error = result.errors[0]
        index = int(error.policy_id.removeprefix("policy")) if error.policy_id.startswith("policy") else -1
        statement = statements[index] if 0 <= index < len(statements) else None
        line = _line_of_quoted_token(statement, error.error, skip=error.policy_id) if statement else None
        # Cedar names the policy by its position; the author knows it by its @id.
        named = result.id_annotations_by_policy_id.get(error.policy_id)
        message = error.error.replace(f"`{error.policy_id}`", f"`{named}`") if named else error.error
        more = f" (and {len(result.errors) - 1} more)" if len(result.errors) > 1 else ""
        raise PolicyFileError(
            policy_path, line, f"the policy does not match {schema_path.name}: {message}{more}"
        )
    return BrandPolicies(
        policy_file=policy_path,
        schema_file=schema_path,
        policy_set=policy_set,
        schema=schema,
        by_cedar_id=_describe_policies(policy_path, text, statements),
    )


@functools.cache
def _cached_policies(directory: Path) -> BrandPolicies:
    return load_policies_from(directory)


def policies_for(brand: BrandConfig | str) -> BrandPolicies:
    """The brand's policies, loaded once per warm container."""
    directory = brand_dir(brand) if isinstance(brand, str) else brand.directory
    return _cached_policies(directory.resolve())


def reset_policy_cache() -> None:
    _cached_policies.cache_clear()


# ---- The request ------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderLine:
    item_id: str
    category: str  # the most specific, as the plan names it
    unit_price_minor: int
    quantity: int
    # Every category the item is in: ``category`` and each level of the merchant's paths.
    categories: tuple[str, ...] = ()

    @property
    def all_categories(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.category, *self.categories)))


@dataclass(frozen=True)
class PolicyFacts:
    """What the policies decide on. Derived from the plan's numbers and the user's saved
    profile, never from free text: titles, justifications and the goal's words have no say.

    Amounts are in the brand's currency: a plan priced elsewhere is converted at the brand's
    rate, rounded up (``brands.rates``); ``priced_in`` and ``plan_total`` keep what the merchant
    charges, for reasons and for policies about foreign currencies."""

    user_id: str
    trust_level: int
    payment_method_age_days: int
    order_id: str
    total: Money
    lines: tuple[OrderLine, ...]
    recipient_known: bool
    recipient_is_self: bool
    recipient_country: str
    category_restrictions: Mapping[str, str]  # category -> "deny", "staff" or "none"
    merchant_id: str
    merchant_allowed: bool
    limits: Mapping[str, Money | int]
    recent: RecentActivity
    brand_currency: str
    priced_in: str | None = None  # the plan's currency, when it is not the brand's
    plan_total: Money | None = None  # the total the merchant charges, in ``priced_in``
    home_country: str | None = None  # the shopper's (None: the recipient's, so never "abroad")


def facts_for(
    plan: Plan,
    profile: UserProfile,
    brand: BrandConfig,
    recent: RecentActivity,
    today: date,
    merchant_categories: Mapping[str, Sequence[str]] | None = None,
) -> PolicyFacts:
    """Raises ``NoCurrencyRate`` when an amount is in a currency the brand has no rate for.

    ``merchant_categories`` (item id -> every category the merchant puts it in) is what restrictions
    are read from; the plan's own category counts too, so a plan can only make an item stricter.
    """
    merchant_categories = merchant_categories or {}
    summary = plan.summary
    payment = next((step for step in plan.steps if isinstance(step, PaymentCompleteStep)), None)
    method = next(
        (m for m in profile.paymentMethods if payment is not None and m.id == payment.args.paymentMethodId),
        None,
    )
    # An unknown payment method counts as brand new (hygiene denies it anyway).
    age_days = max(0, (today - method.addedOn).days) if method is not None else 0
    merged: dict[str, OrderLine] = {}
    for item in summary.items:
        known = merged.get(item.itemId)
        merged[item.itemId] = OrderLine(
            item_id=item.itemId,
            category=item.category,
            unit_price_minor=in_brand_currency(item.unitPrice, brand).amount_minor,
            quantity=item.quantity + (known.quantity if known else 0),
            categories=tuple(merchant_categories.get(item.itemId, ())),
        )
    # Known and self are decided by the address itself, not by the id a planner put beside it.
    saved = [entry for entry in profile.recipients if entry.recipient == summary.recipient]
    limits = brand.limits
    # The merchant the plan buys from, not the stack's default: a brand may list several.
    merchant_id = plan.merchant.id
    foreign = summary.total.currency != brand.currency
    return PolicyFacts(
        user_id=profile.userId,
        trust_level=profile.trustLevel,
        payment_method_age_days=age_days,
        order_id=plan.planId,
        total=in_brand_currency(summary.total, brand),
        lines=tuple(merged.values()),
        recipient_known=bool(saved),
        recipient_is_self=any(entry.relation == "self" for entry in saved),
        recipient_country=summary.recipient.address.country,
        # Each category on its own: a restricted key matching any level of any path restricts the item.
        category_restrictions={
            category: restriction_for([category], brand.category_rules())
            for line in merged.values()
            for category in line.all_categories
        },
        merchant_id=merchant_id,
        merchant_allowed=merchant_id in brand.allowedMerchants,
        limits={
            "perOrder": limits.perOrder,
            "perDay": limits.perDay,
            "confirmationThreshold": limits.confirmationThreshold,
            "strongApprovalThreshold": limits.strongApprovalThreshold,
            "maxOrdersPerDay": limits.maxOrdersPerDay,
            **({"stepUpThreshold": limits.stepUpThreshold} if limits.stepUpThreshold else {}),
        },
        recent=_recent_in_brand_currency(recent, brand),
        brand_currency=brand.currency,
        priced_in=summary.total.currency if foreign else None,
        plan_total=summary.total if foreign else None,
        home_country=profile.home_country,
    )


def _recent_in_brand_currency(recent: RecentActivity, brand: BrandConfig) -> RecentActivity:
    """The last 24 hours' spend as one amount in the brand's currency (orders placed in other
    currencies count at the brand's rate, rounded up)."""
    spend = sum(
        in_brand_currency(Money(amount_minor=amount, currency=currency), brand).amount_minor
        for currency, amount in sorted(recent.spend_minor.items())
    )
    return RecentActivity(orders=recent.orders, spend_minor={brand.currency: spend})


def _uid(kind: str, entity_id: str) -> dict[str, str]:
    return {"type": f"{NAMESPACE}::{kind}", "id": entity_id}


def _ref(kind: str, entity_id: str) -> dict[str, dict[str, str]]:
    return {"__entity": _uid(kind, entity_id)}


def _minor(value: Money | int) -> int:
    return value.amount_minor if isinstance(value, Money) else value


def entities_for(facts: PolicyFacts) -> list[dict[str, Any]]:
    categories = sorted(facts.category_restrictions)
    restrictions = sorted({rule for rule in facts.category_restrictions.values() if rule != "none"})
    return [
        {
            "uid": _uid("User", facts.user_id),
            "attrs": {
                "trustLevel": facts.trust_level,
                "paymentMethodAgeDays": facts.payment_method_age_days,
                "homeCountry": facts.home_country or facts.recipient_country,
                "limits": {"currency": facts.brand_currency, "stepUpThreshold": _NO_THRESHOLD}
                | {name: _minor(value) for name, value in facts.limits.items()},
            },
            "parents": [],
        },
        *(
            {
                "uid": _uid("Category", name),
                "attrs": {"restriction": facts.category_restrictions[name]},
                "parents": [],
            }
            for name in categories
        ),
        *(
            {
                "uid": _uid("Product", line.item_id),
                "attrs": {
                    "category": _ref("Category", line.category),
                    "unitPrice": line.unit_price_minor,
                    "quantity": line.quantity,
                },
                "parents": [_uid("Category", name) for name in line.all_categories],
            }
            for line in facts.lines
        ),
        {
            "uid": _uid("Merchant", facts.merchant_id),
            "attrs": {"allowed": facts.merchant_allowed},
            "parents": [],
        },
        {
            "uid": _uid("Order", facts.order_id),
            "attrs": {
                "total": facts.total.amount_minor,
                "currency": facts.total.currency,
                "pricedIn": facts.priced_in or facts.total.currency,
                "items": [_ref("Product", line.item_id) for line in facts.lines],
                "categories": [_ref("Category", name) for name in categories],
                "restrictions": restrictions,
                "itemCount": sum(line.quantity for line in facts.lines),
                "recipientKnown": facts.recipient_known,
                "recipientIsSelf": facts.recipient_is_self,
                "recipientCountry": facts.recipient_country,
                "merchant": _ref("Merchant", facts.merchant_id),
            },
            "parents": [],
        },
    ]


def context_for(facts: PolicyFacts) -> dict[str, int]:
    return {
        "ordersLast24h": facts.recent.orders,
        "spendLast24h": facts.recent.spend(facts.brand_currency).amount_minor,
    }


# ---- The decision ----------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyDecision:
    tier: RiskTier
    approver: Literal["user", "staff"] | None
    findings: list[Finding]
    allowed: Mapping[PolicyAction, bool]
    # The approval also needs a one-time code (a policy forbade ApproveWithoutCode).
    step_up: bool = False


def _reason_values(facts: PolicyFacts) -> dict[str, str]:
    values: dict[str, str] = {
        name: value.format() if isinstance(value, Money) else str(value)
        for name, value in facts.limits.items()
    }
    total = facts.total.format()
    if facts.plan_total is not None:
        total = f"{total} ({facts.plan_total.format()} at the brand's rate)"
    values |= {
        "total": total,
        "pricedIn": facts.priced_in or facts.total.currency,
        "spendLast24h": facts.recent.spend(facts.brand_currency).format(),
        "ordersLast24h": str(facts.recent.orders),
        "paymentMethodAgeDays": str(facts.payment_method_age_days),
        "trustLevel": str(facts.trust_level),
        "homeCountry": facts.home_country or facts.recipient_country,
        "recipientCountry": facts.recipient_country,
    }
    return values


def render_reason(policy: BrandPolicy, facts: PolicyFacts) -> str:
    values = _reason_values(facts)
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), policy.reason)


def decide(policies: BrandPolicies, facts: PolicyFacts) -> PolicyDecision:
    """Asks Cedar about each action; the verdict is the least strict one still allowed."""
    if facts.total.currency != facts.brand_currency:
        # The policies compare Longs in the brand's minor units: another currency would be read as one.
        raise ValueError(f"policy facts must be in {facts.brand_currency}, not {facts.total.currency}")
    principal, resource = _uid("User", facts.user_id), _uid("Order", facts.order_id)
    context = context_for(facts)
    asked = [action for action, _ in _LADDER] + [PolicyAction.APPROVE_WITHOUT_CODE]
    requests = [
        {
            "principal": principal,
            "action": _uid("Action", action.value),
            "resource": resource,
            "context": context,
        }
        for action in asked
    ]
    answers = cedarpy.is_authorized_batch(
        requests, policies.policy_set, entities_for(facts), schema=policies.schema
    )
    results, without_code = answers[: len(_LADDER)], answers[len(_LADDER)]
    allowed = {action: result.allowed for (action, _), result in zip(_LADDER, results, strict=True)}
    allowed[PolicyAction.APPROVE_WITHOUT_CODE] = without_code.allowed
    errors = [error for result in answers for error in result.diagnostics.errors]
    if errors:
        # Cedar skips a policy it cannot evaluate; a skipped forbid must not let an order through.
        return PolicyDecision(
            tier=RiskTier.DENY,
            approver=None,
            findings=[
                Finding(
                    policyId="policy.error",
                    tier=RiskTier.DENY,
                    message="the brand's policies could not be evaluated for this order",
                )
            ],
            allowed=allowed,
        )
    tier = next((tier for action, tier in _LADDER if allowed[action]), RiskTier.DENY)

    def finding(cedar_id: str, forced: RiskTier) -> Finding:
        policy = policies.by_cedar_id[cedar_id]
        return Finding(policyId=policy.id, tier=forced, message=render_reason(policy, facts))

    if tier is RiskTier.AUTO:
        # Nothing spoke against it: the permits that let it run are its reasons.
        findings = [finding(cedar_id, RiskTier.AUTO) for cedar_id in results[0].diagnostics.reasons]
        return PolicyDecision(tier=tier, approver=None, findings=findings, allowed=allowed)

    # An approval (not a denial) needs a code when a forbid spoke against approving without one.
    step_up = tier is not RiskTier.DENY and not without_code.allowed
    # Each forbid that matched forces the tier above the strictest action it forbade.
    forced_by: dict[str, RiskTier] = {}
    for (action, _), result in zip(_LADDER, results, strict=True):
        if allowed[action]:
            continue  # its reasons are the permits that allowed it
        for cedar_id in result.diagnostics.reasons:
            if policies.by_cedar_id[cedar_id].effect == "forbid":
                forced_by[cedar_id] = _TIER_WHEN_FORBIDDEN[action]
    in_file_order = sorted(forced_by, key=lambda cedar_id: policies.by_cedar_id[cedar_id].line)
    findings = [finding(cedar_id, forced_by[cedar_id]) for cedar_id in in_file_order]
    if not findings:
        # No forbid matched, yet a less strict action was not permitted: say so rather than nothing.
        findings = [
            Finding(
                policyId="policy.not-permitted",
                tier=tier,
                message="no policy permits placing this order with less approval",
            )
        ]
    staff = any(policies.by_cedar_id[cedar_id].approver == "staff" for cedar_id in forced_by)
    approver: Literal["user", "staff"] | None = (
        None if tier is RiskTier.DENY else ("staff" if staff else "user")
    )
    return PolicyDecision(tier=tier, approver=approver, findings=findings, allowed=allowed, step_up=step_up)


def evaluate_plan(
    plan: Plan,
    profile: UserProfile,
    brand: BrandConfig,
    recent: RecentActivity,
    today: date,
    merchant_categories: Mapping[str, Sequence[str]] | None = None,
) -> PolicyDecision:
    """The brand's policies on this plan, for this user, given their recent orders, with each item
    in the categories its merchant puts it in (``facts_for``).

    A plan whose amounts cannot be put in the brand's currency is denied before the policies are
    asked: no limit could be checked, and no policy file can let it through."""
    try:
        facts = facts_for(plan, profile, brand, recent, today, merchant_categories)
    except NoCurrencyRate as missing:
        return PolicyDecision(
            tier=RiskTier.DENY,
            approver=None,
            findings=[
                Finding(
                    policyId=CURRENCY_RATE_POLICY,
                    tier=RiskTier.DENY,
                    message=f"amounts in {missing.currency} cannot be checked against the brand's "
                    f"limits: it has no exchange rate from {missing.currency} to {missing.brand_currency}",
                )
            ],
            allowed=dict.fromkeys(PolicyAction, False),
        )
    return decide(policies_for(brand), facts)
