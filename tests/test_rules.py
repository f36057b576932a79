"""The default rulebook on hand-made contexts (every rule, boundaries included) and rulebooks
that must be refused, each error naming its rule and field."""

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from rules import DecisionContext, Outcome, RulebookError, default_rulebook
from rules.hits import positional
from rules.rulebook import parse_rulebook, read_rulebook
from tests import rulebooks

BOOK = default_rulebook()


def decide(book=BOOK, **facts):
    base = dict(order_amount=100.0, exposure=0.0, credit_limit=1000.0, risk_class="B", customer_id="C1",
                salesperson_id="S1", payment_terms_days=30, previous_orders=10)
    return book.evaluate(DecisionContext(**{**base, **facts}))


def codes(verdict):
    return [hit.code for hit in verdict.hits]


def test_within_limit_is_approved_with_no_reasons():
    verdict = decide(order_amount=400.0, exposure=600.0)  # exactly at the limit
    assert verdict.outcome is Outcome.APPROVE and verdict.hits == () and verdict.shadow_hits == ()


def test_credit_limit_bands_by_risk_class_tolerance():
    assert codes(decide(order_amount=100.01, exposure=900.0)) == ["CREDIT_LIMIT_TOLERANCE"]
    assert decide(order_amount=200.0, exposure=900.0).outcome is Outcome.REVIEW       # 1,100: B's 10 % exactly
    assert codes(decide(order_amount=200.01, exposure=900.0)) == ["CREDIT_LIMIT_EXCEEDED"]
    assert decide(order_amount=200.0, exposure=900.0, risk_class="D").outcome is Outcome.HOLD  # D: no tolerance
    assert decide(order_amount=600.0, exposure=900.0).outcome is Outcome.HOLD         # 1,500: 1.5x exactly
    assert codes(decide(order_amount=600.01, exposure=900.0)) == ["CREDIT_LIMIT_FAR_EXCEEDED"]


def test_hit_carries_the_values_that_triggered_it_and_the_remedy():
    hit = decide(order_amount=300.0, exposure=900.0).hits[0]
    assert hit.code == hit.rule_id == "CREDIT_LIMIT_EXCEEDED" and hit.remedy == "guarantee"
    assert hit.values == {"exposure_after": 1200.0, "credit_limit": 1000.0, "order_amount": 300.0,
                          "limit_tolerance": 0.1, "limit_factor": 1.0}
    assert hit.message == "Exposure after this order (1,200.00) exceeds the credit limit (1,000.00)."


def test_single_order_maximum_by_risk_class_requires_prepayment():
    class_e = dict(credit_limit=1e9, risk_class="E", payment_terms_days=14)
    assert decide(order_amount=20000.0, **class_e).outcome is Outcome.APPROVE
    verdict = decide(order_amount=20000.01, **class_e)
    assert codes(verdict) == ["ORDER_ABOVE_MAXIMUM"] and verdict.hits[0].remedy == "prepayment"


def test_customer_on_stop_blocked_or_unknown():
    assert codes(decide(on_stop=True)) == ["CUSTOMER_ON_STOP"]
    unknown = decide(customer_known=False, credit_limit=0.0, risk_class="")
    assert unknown.outcome is Outcome.HOLD and codes(unknown) == ["NO_CREDIT_PROFILE"]
    data = rulebooks.default_data()
    data["lists"]["blocked_customers"]["values"] = ["C1"]
    blocked = decide(rulebooks.compiled(data))
    assert blocked.outcome is Outcome.REJECT and codes(blocked) == ["BLOCKED_CUSTOMER"]
    assert decide(rulebooks.compiled(data), customer_id="C2").outcome is Outcome.APPROVE


def test_overdue_grace_review_and_hold_at_the_policy_edges():
    assert decide(overdue_amount=50.0, days_past_due=1).outcome is Outcome.APPROVE
    assert codes(decide(overdue_amount=50.0, days_past_due=2)) == ["OVERDUE"]
    assert codes(decide(overdue_amount=50.0, days_past_due=30)) == ["OVERDUE"]
    assert codes(decide(overdue_amount=50.0, days_past_due=31)) == ["OVERDUE_BEYOND_POLICY"]
    assert decide(overdue_amount=0.0, days_past_due=90).outcome is Outcome.APPROVE


def test_strongest_action_wins_and_every_match_is_listed_by_priority():
    verdict = decide(on_stop=True, overdue_amount=50.0, days_past_due=5, max_discount=0.5)
    assert verdict.outcome is Outcome.HOLD
    assert codes(verdict) == ["CUSTOMER_ON_STOP", "OVERDUE", "DISCOUNT_BEYOND_AUTHORITY"]


def test_velocity_by_count_and_by_amount():
    assert decide(orders_last_hour=4).outcome is Outcome.APPROVE
    assert codes(decide(orders_last_hour=5)) == ["VELOCITY_COUNT"]
    # B: 1,000,000 in 24 hours, this order included
    assert decide(credit_limit=1e9, amount_last_day=999_900.0, order_amount=100.0).outcome is Outcome.APPROVE
    assert codes(decide(credit_limit=1e9, amount_last_day=999_900.0, order_amount=100.01)) == ["VELOCITY_AMOUNT"]


def test_first_orders_of_a_new_customer():
    assert codes(decide(previous_orders=2, order_amount=20000.01, credit_limit=1e9)) == ["NEW_CUSTOMER_LARGE_ORDER"]
    assert decide(previous_orders=3, order_amount=20000.01, credit_limit=1e9).outcome is Outcome.APPROVE
    assert decide(previous_orders=0, order_amount=20000.0, credit_limit=1e9).outcome is Outcome.APPROVE


def test_discount_beyond_the_salespersons_authority():
    assert decide(max_discount=0.30).outcome is Outcome.APPROVE
    assert codes(decide(max_discount=0.31)) == ["DISCOUNT_BEYOND_AUTHORITY"]
    data = rulebooks.default_data()
    data["tables"]["discount_authority"]["values"] = {"S1": 0.10}
    assert codes(decide(rulebooks.compiled(data), max_discount=0.11)) == ["DISCOUNT_BEYOND_AUTHORITY"]
    assert decide(rulebooks.compiled(data), max_discount=0.11, salesperson_id="S2").outcome is Outcome.APPROVE


def test_payment_terms_beyond_policy():
    assert decide(payment_terms_days=60).outcome is Outcome.APPROVE           # B: 60 days
    assert codes(decide(payment_terms_days=61)) == ["TERMS_BEYOND_POLICY"]


def test_split_orders_just_under_the_maximum():
    just_under = dict(risk_class="E", payment_terms_days=14, credit_limit=1e9, order_amount=19_000.0)  # max 20,000
    assert decide(**just_under, recent_order_amounts=(5_000.0,)).outcome is Outcome.APPROVE
    verdict = decide(**just_under, recent_order_amounts=(5_000.0, 16_000.0))  # 16,000 = 0.8 x 20,000
    assert codes(verdict) == ["SPLIT_ORDERS"] and verdict.hits[0].values["recent_order_amounts"] == "5000, 16000"
    assert decide(**just_under, recent_order_amounts=(15_999.0,)).outcome is Outcome.APPROVE


def test_model_scores_review_only_once_scored_and_at_the_threshold():
    assert decide(anomaly_score=0.99).outcome is Outcome.APPROVE               # not scored: warming up
    verdict = decide(anomaly_scored=True, anomaly_score=0.99, anomaly_factors="amount_ratio (9.1)")
    assert codes(verdict) == ["ANOMALOUS_ORDER"] and "amount_ratio (9.1)" in verdict.hits[0].message
    assert decide(anomaly_scored=True, anomaly_score=0.9899).outcome is Outcome.APPROVE
    assert codes(decide(late_payment_scored=True, late_payment_probability=0.7)) == ["LATE_PAYMENT_RISK"]
    assert decide(late_payment_scored=True, late_payment_probability=0.6999).outcome is Outcome.APPROVE


def test_emergency_mode_holds_a_segment_and_tightens_every_limit():
    data = rulebooks.default_data()
    data["emergency"] = {"active": True, "hold_segments": [{"country": "RU"}, {"industry": "mining", "channel": "web"}],
                         "limit_factor": 0.8}
    book = rulebooks.compiled(data)
    assert codes(decide(book, country="RU")) == ["EMERGENCY_SEGMENT_HOLD"]
    assert codes(decide(book, industry="mining", channel="web")) == ["EMERGENCY_SEGMENT_HOLD"]
    assert decide(book, industry="mining", channel="edi").outcome is Outcome.APPROVE
    assert decide(book, order_amount=100.0, exposure=700.0).outcome is Outcome.APPROVE   # 800 = 0.8 x 1,000
    assert codes(decide(book, order_amount=100.0, exposure=750.0)) == ["CREDIT_LIMIT_TOLERANCE"]
    data["emergency"]["active"] = False
    assert decide(rulebooks.compiled(data), country="RU").outcome is Outcome.APPROVE


def test_shadow_rules_are_reported_and_never_decide_disabled_rules_not_at_all():
    book = rulebooks.compiled(rulebooks.changed(
        VELOCITY_COUNT={"when": "orders_last_hour >= 2", "action": "hold", "shadow": True},
        OVERDUE={"enabled": False}))
    verdict = decide(book, orders_last_hour=3, overdue_amount=50.0, days_past_due=5)
    assert verdict.outcome is Outcome.APPROVE and verdict.hits == ()
    assert [hit.code for hit in verdict.shadow_hits] == ["VELOCITY_COUNT"]


def test_a_condition_failing_at_run_time_reviews_the_order_and_names_the_rule():
    book = rulebooks.compiled(rulebooks.changed(VELOCITY_COUNT={"when": "orders_last_hour / previous_orders > 1"}))
    verdict = decide(book, previous_orders=0, on_stop=True)
    assert verdict.outcome is Outcome.HOLD and codes(verdict) == ["CUSTOMER_ON_STOP", "RULE_ERROR"]
    assert "VELOCITY_COUNT" in verdict.hits[1].message and "divide by zero" in verdict.hits[1].message


def refused(data):
    with pytest.raises(RulebookError) as caught:
        rulebooks.compiled(data)
    return caught.value.errors


def test_invalid_rulebooks_are_refused_with_every_error_at_its_rule_and_field():
    errors = refused(rulebooks.changed(
        ON_STOP={}, CUSTOMER_ON_STOP={"colour": "red"}, OVERDUE={"action": "escalate"},
        VELOCITY_COUNT={"priority": "high"}))
    assert errors == [
        "rules[2] (CUSTOMER_ON_STOP).colour: Extra inputs are not permitted",
        "rules[9] (OVERDUE).action: Input should be 'approve', 'review', 'hold' or 'reject'",
        "rules[11] (VELOCITY_COUNT).priority: Input should be a valid integer, unable to parse string as an integer",
    ]


def test_duplicate_ids_and_remedies_without_hold_are_refused():
    data = rulebooks.default_data()
    data["rules"].append(dict(data["rules"][0]))
    assert any("duplicate rule id 'BLOCKED_CUSTOMER'" in e for e in refused(data))
    errors = refused(rulebooks.changed(OVERDUE={"remedy": "prepayment"}))
    assert errors == ["rules[9] (OVERDUE): Value error, remedy 'prepayment' needs action 'hold', not 'review'"]


def test_conditions_that_do_not_compile_are_refused_with_the_place():
    errors = refused(rulebooks.changed(
        OVERDUE={"when": "days_past_due > 30.0"},              # int vs double
        VELOCITY_COUNT={"when": "orders_last_hour >="},          # syntax
        VELOCITY_AMOUNT={"when": "amount_last_week > 1.0"},      # unknown variable
        ANOMALOUS_ORDER={"when": "anomaly_score"},               # not true/false
        LATE_PAYMENT_RISK={"message": "{probability:.0%}"}))     # unknown template field
    assert [e.split(":")[0] for e in errors] == [
        "rules[9] (OVERDUE).when", "rules[11] (VELOCITY_COUNT).when", "rules[12] (VELOCITY_AMOUNT).when",
        "rules[16] (ANOMALOUS_ORDER).when", "rules[17] (LATE_PAYMENT_RISK).message"]
    assert "no matching overload for '_>_' applied to '(int, double)'" in errors[0]
    assert "undeclared reference to 'amount_last_week'" in errors[2]
    assert "must be true or false" in errors[3]


def test_message_formats_that_do_not_suit_the_variable_are_refused_with_the_place():
    text_as_number = refused(rulebooks.changed(OVERDUE={"message": "{risk_class:.2f}"}))
    assert text_as_number == ["rules[9] (OVERDUE).message: cannot be formatted: "
                              "Unknown format code 'f' for object of type 'str'"]
    field_in_format = refused(rulebooks.changed(VELOCITY_COUNT={"message": "{orders_last_hour:{width}}"}))
    assert field_in_format == ["rules[11] (VELOCITY_COUNT).message: Value error, the format of message field "
                               "{orders_last_hour} must not contain fields"]


def test_unreadable_files_and_bad_yaml_are_refused(tmp_path):
    with pytest.raises(RulebookError, match="cannot read"):
        read_rulebook(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("rules: [\n")
    with pytest.raises(RulebookError, match="not valid YAML"):
        read_rulebook(tmp_path / "bad.yaml")
    with pytest.raises(RulebookError, match=r"rules: Field required"):
        parse_rulebook({"name": "x"})


def test_rollback_steps_back_over_earlier_rollbacks():
    from datetime import UTC, datetime

    from streams.contracts import RulebookApplied
    from streams.rulebook_control import to_restore

    valid = rulebooks.DEFAULT_RULEBOOK.read_text()

    def applied(sequence, restores=None, content=valid):
        return RulebookApplied(sequence=sequence, content=content, applied_at=datetime.now(UTC), restores=restores)

    assert to_restore([]) is None and to_restore([applied(1)]) is None
    assert to_restore([applied(1), applied(2)]).sequence == 1
    # 1, 2, 3; rollback to 2 (#4); rolling back again goes to 1, not back to 3
    assert to_restore([applied(1), applied(2), applied(3), applied(4, restores=2)]).sequence == 1
    # a deployment the workers refused is not the current one: rolling back from 2 goes to 1
    assert to_restore([applied(1), applied(2), applied(3, content="rules: []")]).sequence == 1


def test_emergency_mode_in_one_action_switches_the_section_and_keeps_the_rest():
    from streams.rulebook_control import with_emergency

    base = rulebooks.DEFAULT_RULEBOOK.read_text()
    on = rulebooks.compiled(yaml.safe_load(with_emergency(base, True, [{"country": "RU"}], 0.8)))
    assert codes(decide(on, country="RU")) == ["EMERGENCY_SEGMENT_HOLD"]
    assert decide(on, order_amount=100.0, exposure=750.0).outcome is Outcome.REVIEW   # 850 > 0.8 x 1,000
    off = rulebooks.compiled(yaml.safe_load(with_emergency(base, False, [], None)))
    assert decide(off, country="RU").outcome is Outcome.APPROVE
    with pytest.raises(RulebookError, match="limit_factor"):
        with_emergency(base, True, [], 1.5)


def test_messages_may_use_tables_and_lists_that_no_condition_uses():
    data = rulebooks.default_data()
    data["rules"] = [{"id": "EVERYTHING", "when": "order_amount > 0.0", "action": "review",
                      "message": "{max_order:,.0f} {blocked_customers} {limit_factor}", "values": ["velocity_amount"]}]
    hit = decide(rulebooks.compiled(data)).hits[0]
    assert hit.message == "500,000 False 1.0" and hit.values == {"velocity_amount": 1000000.0}


FIELDS = ["{amount}", "{amount:,.2f}", "{amount!r}", "{amount:>12.1%}", "{days:d}", "{days:+}", "{name!s:^7}", "{name}"]


LITERALS = st.text(alphabet="ab {}:!", max_size=4).map(lambda text: text.replace("{", "{{").replace("}", "}}"))


@given(st.lists(st.one_of(LITERALS, st.sampled_from(FIELDS)), max_size=8))
def test_a_template_with_numbered_fields_formats_as_the_named_one(pieces):
    template = "".join(pieces)
    named = {"amount": 1234.5678, "days": 42, "name": "C{1}"}
    numbered, names = positional(template)
    assert numbered.format(*[named[name] for name in names]) == template.format_map(named)
