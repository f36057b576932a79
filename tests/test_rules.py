from rules import BUILTIN_RULES, DecisionContext, Outcome, RulePolicy, builtin_rules, evaluate


def decide(**facts):
    base = dict(order_amount=100.0, exposure=0.0, credit_limit=1000.0)
    return evaluate(DecisionContext(**{**base, **facts}), BUILTIN_RULES)


def test_within_limit_is_approved_with_no_reasons():
    verdict = decide(order_amount=400.0, exposure=600.0)
    assert verdict.outcome is Outcome.APPROVE and verdict.hits == ()


def test_credit_limit_bands_review_hold_reject():
    assert decide(order_amount=150.0, exposure=900.0).outcome is Outcome.REVIEW    # 1,050: within 10 %
    assert decide(order_amount=300.0, exposure=900.0).outcome is Outcome.HOLD      # 1,200
    assert decide(order_amount=700.0, exposure=900.0).outcome is Outcome.REJECT    # 1,600 > 1.5x


def test_hit_carries_the_values_that_triggered_it():
    hit = decide(order_amount=300.0, exposure=900.0).hits[0]
    assert hit.code == "CREDIT_LIMIT_EXCEEDED"
    assert hit.values == {"exposure_after": 1200.0, "credit_limit": 1000.0, "order_amount": 300.0}


def test_strongest_action_wins_and_every_match_is_listed():
    verdict = decide(on_stop=True, overdue_amount=50.0, days_past_due=5, order_amount=10.0)
    assert verdict.outcome is Outcome.HOLD
    assert [h.code for h in verdict.hits] == ["CUSTOMER_ON_STOP", "OVERDUE"]


def test_overdue_beyond_policy_holds_and_grace_period_passes():
    assert decide(overdue_amount=50.0, days_past_due=31).outcome is Outcome.HOLD
    assert decide(overdue_amount=50.0, days_past_due=1).outcome is Outcome.APPROVE


def test_unknown_customer_is_held():
    verdict = decide(customer_known=False, credit_limit=None)
    assert verdict.outcome is Outcome.HOLD and verdict.hits[0].code == "NO_CREDIT_PROFILE"


def test_policy_thresholds_change_the_outcome():
    strict = builtin_rules(RulePolicy(limit_tolerance=0.0))
    ctx = DecisionContext(order_amount=150.0, exposure=900.0, credit_limit=1000.0)
    assert evaluate(ctx, strict).outcome is Outcome.HOLD
