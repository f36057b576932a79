"""The first rule set, in code: credit limit, customer on stop, overdue, no credit profile,
anomalous order, late-payment risk.

The rulebook issue replaces these with a versioned, hot-reloadable rulebook; until then the
thresholds come from :class:`RulePolicy` (set through ``SALESGUARD_*`` settings).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from rules.context import DecisionContext
from rules.evaluate import Rule
from rules.outcome import Outcome, RuleHit

BUILTIN_RULESET_VERSION = "builtin-2"


@dataclass(frozen=True)
class RulePolicy:
    """Thresholds of the built-in rules.

    ``limit_tolerance``: over the limit by at most this share of the limit is reviewed, not held.
    ``reject_over_limit``: exposure after the order above ``limit x reject_over_limit`` is rejected.
    ``overdue_review_days`` / ``overdue_hold_days``: days past due that trigger review / hold.
    ``anomaly_review_score`` / ``late_payment_review_probability``: scores at or above which an
    order is reviewed.
    """

    limit_tolerance: float = 0.10
    reject_over_limit: float = 1.5
    overdue_review_days: int = 1
    overdue_hold_days: int = 30
    anomaly_review_score: float = 0.99
    late_payment_review_probability: float = 0.7


def no_credit_profile(ctx: DecisionContext) -> RuleHit | None:
    """A customer without master data has no credit line: hold until the desk sets one."""
    if ctx.customer_known:
        return None
    return RuleHit("NO_CREDIT_PROFILE", Outcome.HOLD, "Customer has no credit profile yet; no credit line to draw on.")


def on_stop(ctx: DecisionContext) -> RuleHit | None:
    """A customer on stop gets no further credit."""
    if not ctx.on_stop:
        return None
    return RuleHit("CUSTOMER_ON_STOP", Outcome.HOLD, "Customer is on stop.")


def credit_limit(policy: RulePolicy, ctx: DecisionContext) -> RuleHit | None:
    """Exposure after the order compared with the limit: review within tolerance, hold above
    it, reject far above it."""
    limit = ctx.credit_limit
    if limit is None or ctx.exposure_after <= limit:
        return None
    values: dict[str, float | str | None] = {
        "exposure_after": round(ctx.exposure_after, 2),
        "credit_limit": round(limit, 2),
        "order_amount": round(ctx.order_amount, 2),
    }
    over = ctx.exposure_after - limit
    if ctx.exposure_after > limit * policy.reject_over_limit:
        return RuleHit(
            "CREDIT_LIMIT_FAR_EXCEEDED",
            Outcome.REJECT,
            f"Exposure after this order ({ctx.exposure_after:,.2f}) exceeds {policy.reject_over_limit:g}x "
            f"the credit limit ({limit:,.2f}).",
            values,
        )
    if over <= limit * policy.limit_tolerance:
        return RuleHit(
            "CREDIT_LIMIT_TOLERANCE",
            Outcome.REVIEW,
            f"Exposure after this order ({ctx.exposure_after:,.2f}) is over the credit limit ({limit:,.2f}) "
            f"by {over:,.2f}, within the {policy.limit_tolerance:.0%} tolerance.",
            values,
        )
    return RuleHit(
        "CREDIT_LIMIT_EXCEEDED",
        Outcome.HOLD,
        f"Exposure after this order ({ctx.exposure_after:,.2f}) exceeds the credit limit ({limit:,.2f}) "
        f"by {over:,.2f}.",
        values,
    )


def overdue(policy: RulePolicy, ctx: DecisionContext) -> RuleHit | None:
    """Invoices past due: review after a grace period, hold beyond policy."""
    dpd = ctx.days_past_due
    if ctx.overdue_amount <= 0 or dpd <= policy.overdue_review_days:
        return None
    values: dict[str, float | str | None] = {"days_past_due": dpd, "overdue_amount": round(ctx.overdue_amount, 2)}
    if dpd > policy.overdue_hold_days:
        return RuleHit(
            "OVERDUE_BEYOND_POLICY",
            Outcome.HOLD,
            f"{ctx.overdue_amount:,.2f} overdue, oldest {dpd} days past due (policy: {policy.overdue_hold_days}).",
            values,
        )
    return RuleHit(
        "OVERDUE",
        Outcome.REVIEW,
        f"{ctx.overdue_amount:,.2f} overdue, oldest {dpd} days past due.",
        values,
    )


def _high_score(code: str, name: str, score: float | None, threshold: float,
                factors: tuple[tuple[str, float], ...], sentence: str, lead: str) -> RuleHit | None:
    """Review when a model's score reaches its threshold. ``sentence`` is formatted with the
    score; the features behind it follow ``lead``."""
    if score is None or score < threshold:
        return None
    listed = ", ".join(f"{feature} ({value:g})" for feature, value in factors)
    because = f"; {lead} {listed}" if listed else ""
    return RuleHit(code, Outcome.REVIEW, sentence.format(score) + because + ".",
                   {name: score, "factors": listed or None})


def anomalous_order(policy: RulePolicy, ctx: DecisionContext) -> RuleHit | None:
    """An order more unusual than almost all recent ones is looked at by a person."""
    return _high_score("ANOMALOUS_ORDER", "anomaly_score", ctx.anomaly_score, policy.anomaly_review_score,
                       ctx.anomaly_factors, "Order is more unusual than {:.1%} of recent orders", "most unusual:")


def late_payment_risk(policy: RulePolicy, ctx: DecisionContext) -> RuleHit | None:
    """A customer likely to pay late is looked at by a person."""
    threshold = policy.late_payment_review_probability
    return _high_score("LATE_PAYMENT_RISK", "late_payment_probability", ctx.late_payment_probability, threshold,
                       ctx.late_payment_factors, f"Late-payment probability {{:.0%}} (review from {threshold:.0%})",
                       "driven by")


def builtin_rules(policy: RulePolicy) -> tuple[Rule, ...]:
    """The built-in rules with the given thresholds, in reporting order."""
    return (no_credit_profile, on_stop, partial(credit_limit, policy), partial(overdue, policy),
            partial(anomalous_order, policy), partial(late_payment_risk, policy))


BUILTIN_RULES: tuple[Rule, ...] = builtin_rules(RulePolicy())
