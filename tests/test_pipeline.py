import base64
import dataclasses
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from detectors.risk_models import RiskModels
from rules import CompiledRulebook, default_rulebook
from streams.app import pipeline_config
from streams.contracts import Decision
from streams.exposure import CustomerState
from streams.generator import SalesSimulator
from streams.model_evaluation import simulated_examples
from streams.pipeline import BatchResult, Pipeline, RawMessage
from streams.settings import Settings
from streams.trainer import learn_example
from tests import events as ev


class Harness:
    """A pipeline over an in-memory state dict, fed one message list at a time."""

    def __init__(self, rules: CompiledRulebook | None = None, **settings):
        config = pipeline_config(Settings(**settings))
        if rules is not None:
            config = dataclasses.replace(config, rules=rules)
        self.pipeline = Pipeline(config, clock=lambda: 1_800_000_000.0)
        self.states: dict[str, CustomerState] = {}
        self.offset = 0

    def message(self, event, topic=None, key=None, value=None) -> RawMessage:
        self.offset += 1
        return RawMessage(topic or ev.topic_of(event), 0, self.offset,
                          key if key is not None else event["customer_id"].encode(),
                          value if value is not None else ev.encode(event), 1_800_000_000.0)

    def run(self, *messages: RawMessage) -> BatchResult:
        result = self.pipeline.process(list(messages), self.states.get)
        for cid, (_, state) in result.changed.items():
            self.states[cid] = state
        return result

    def feed(self, *events) -> BatchResult:
        return self.run(*(self.message(e) for e in events))


def test_decision_carries_exposure_limit_reasons_and_versions():
    h = Harness()
    h.feed(ev.customer("C1", limit=1000.0))
    result = h.feed(ev.order("C1", "SO-1", 600.0), ev.order("C1", "SO-2", 600.0))
    first, second = result.decisions
    assert first.outcome.value == "approve" and first.exposure_after == 600.0
    assert second.outcome.value == "hold" and second.exposure_before == 600.0
    assert second.reasons[0].code == "CREDIT_LIMIT_EXCEEDED" and second.credit_limit == 1000.0
    assert second.rulebook_version == default_rulebook().version and "exceeds the credit limit" in second.summary
    assert second.model_version == "models-0" and second.scores == {}  # untrained models give no scores
    assert [h.order_id for h in result.holds] == ["SO-2"]
    assert h.states["C1"].exposure() == 600_00


def test_redelivered_order_that_was_recorded_changes_and_publishes_nothing():
    h = Harness()
    h.feed(ev.customer("C1"))
    placed = ev.order("C1", "SO-1", 100.0)
    assert len(h.feed(placed).decisions) == 1
    again = h.feed(placed)
    assert again.decisions == [] and again.changed == {} and again.duplicates == ["C1"]
    assert h.states["C1"].exposure() == 100_00


def test_order_redelivered_after_a_crash_before_its_state_was_written_gets_the_same_decision():
    h = Harness()
    h.feed(ev.customer("C1", limit=150.0))
    h.feed(ev.order("C1", "SO-0", 100.0))
    before_crash = {cid: CustomerState.from_dict(s.to_dict()) for cid, s in h.states.items()}
    batch = [ev.order("C1", "SO-1", 40.0), ev.order("C1", "SO-2", 40.0)]
    first = h.feed(*batch).decisions
    h.states = before_crash  # the decisions went out, the state write did not
    second = h.feed(*batch).decisions
    strip = [{k: v for k, v in d.model_dump().items() if k not in ("decided_at", "latency_ms")} for d in first]
    assert strip == [{k: v for k, v in d.model_dump().items() if k not in ("decided_at", "latency_ms")}
                     for d in second]
    assert [d.outcome.value for d in second] == ["approve", "hold"]


@pytest.mark.parametrize(
    ("value", "key", "code"),
    [
        (b"{not json", None, "not_json"),
        (b"\xff\xfe\x00garbage", None, "not_json"),
        (ev.encode({**ev.order("C1", "SO-1", 10.0), "total": -5}), None, "invalid_event"),
        (ev.encode({**ev.order("C1", "SO-1", 10.0), "total": 11.0}), None, "invalid_event"),
        (ev.encode(ev.order("C1", "SO-1", 10.0, currency="XXX")), None, "unknown_currency"),
        (ev.encode(ev.order("C1", "SO-1", 10.0)), b"C2", "key_mismatch"),
        (b'{"type": "order.placed", "pad": "' + b"x" * 70_000 + b'"}', None, "oversized"),
        (ev.encode(ev.payment("C1", "P-1", "I-1", 5.0)), None, "invalid_event"),  # ledger event on orders
    ],
)
def test_bad_messages_are_dead_lettered_with_reason_and_the_next_good_one_is_decided(value, key, code):
    h = Harness()
    h.feed(ev.customer("C1"))
    bad = RawMessage("orders", 3, 41, key or b"C1", value, 0.0)
    result = h.run(bad, h.message(ev.order("C1", "SO-2", 10.0)))
    [letter] = result.dead_letters
    assert letter.code == code and letter.reason
    assert (letter.source_topic, letter.partition, letter.offset) == ("orders", 3, 41)
    assert base64.b64decode(letter.raw_b64) == value and letter.key == (key or b"C1")
    assert [d.order_id for d in result.decisions] == ["SO-2"]


def test_amendment_is_decided_again_against_exposure_without_its_old_amount():
    h = Harness()
    h.feed(ev.customer("C1", limit=1000.0))
    h.feed(ev.order("C1", "SO-1", 800.0))
    result = h.feed(ev.order("C1", "SO-1", 950.0, kind="order.amended"))
    [decision] = result.decisions
    assert decision.trigger == "order.amended" and decision.exposure_before == 0.0
    assert decision.outcome.value == "approve" and h.states["C1"].exposure() == 950_00


def test_amendment_of_an_unknown_order_is_dead_lettered():
    h = Harness()
    result = h.feed(ev.order("C1", "SO-404", 10.0, kind="order.amended"))
    assert [d.code for d in result.dead_letters] == ["unknown_reference"]


def test_cancelling_a_held_order_closes_its_hold():
    h = Harness()
    h.feed(ev.customer("C1", on_stop=True))
    assert h.feed(ev.order("C1", "SO-1", 10.0)).holds[0].order_id == "SO-1"
    result = h.feed(ev.cancel("C1", "SO-1"))
    assert result.holds_closed == [("C1", "SO-1")]


def test_foreign_currency_is_converted_to_base_cents():
    h = Harness(fx_rates={"EUR": 1.0, "USD": 0.5})
    h.feed(ev.customer("C1", limit=1000.0))
    [decision] = h.feed(ev.order("C1", "SO-1", 100.0, currency="USD")).decisions
    assert decision.order_amount == 50.0 and h.states["C1"].open_orders() == 50_00


def test_generated_broken_messages_get_the_code_they_were_built_for():
    h = Harness()
    messages = list(SalesSimulator(seed=3, total_events=3000, bad_rate=0.05))
    result = h.run(*(RawMessage(m.topic, 0, i, m.key, m.value, 0.0) for i, m in enumerate(messages)))
    expected = sorted(m.kind.removeprefix("bad:") for m in messages if not m.is_valid)
    # an amendment/write-off whose original was broken is legitimately unknown_reference
    got = sorted(d.code for d in result.dead_letters if d.code != "unknown_reference")
    assert got == expected and len(expected) > 50
    orphan_amendments = sum(d.code == "unknown_reference" and d.source_topic == "orders" for d in result.dead_letters)
    assert len(result.decisions) + orphan_amendments == sum(m.needs_decision for m in messages)


def by_customer(decisions: list[Decision]) -> dict[str, list[Decision]]:
    out: dict[str, list[Decision]] = {}
    for decision in decisions:
        out.setdefault(decision.customer_id, []).append(decision)
    return out


def trained_models() -> RiskModels:
    """Both models trained on other simulated traffic, scoring from the first order."""
    models = RiskModels(anomaly_min_examples=0, credit_min_labels=0)
    for example in simulated_examples(seed=11, events=3000):
        learn_example(models, example)
    return models


def test_batches_decide_exactly_as_one_event_at_a_time():
    """A worker's batches (500 events: validation, state, both models scoring, the rulebook on
    a round of orders at once) decide exactly as one event at a time does."""
    messages = [RawMessage(m.topic, 0, i, m.key, m.value, 0.0)
                for i, m in enumerate(SalesSimulator(seed=5, total_events=2000))]
    batched, single = Harness(), Harness()
    batched.pipeline.models = single.pipeline.models = trained_models()
    decisions_batched = [d for i in range(0, len(messages), 500) for d in batched.run(*messages[i:i + 500]).decisions]
    decisions_single = [d for m in messages for d in single.run(m).decisions]
    assert len(decisions_batched) == len(decisions_single) > 500
    assert all(set(d.scores) == {"anomaly", "late_payment"} for d in decisions_batched)
    assert len({d.outcome for d in decisions_batched}) == 4 and sum(bool(d.reasons) for d in decisions_batched) > 100
    # the same decisions, each customer's in the same order (customers are independent)
    assert by_customer(decisions_batched) == by_customer(decisions_single)
    assert {c: s.to_dict() for c, s in batched.states.items()} == {c: s.to_dict() for c, s in single.states.items()}


def test_decision_id_is_derived_from_the_order_event():
    h = Harness()
    h.feed(ev.customer("C1"))
    a = h.feed(ev.order("C1", "SO-1", 1.0, event_id="evt-A")).decisions[0]
    b = Harness()
    b.feed(ev.customer("C1"))
    assert b.feed(ev.order("C1", "SO-1", 1.0, event_id="evt-A")).decisions[0].decision_id == a.decision_id
    assert orjson.loads(a.model_dump_json())["decision_id"] == a.decision_id


def test_order_processed_after_its_invoice_is_decided_on_exposure_without_it():
    h = Harness()
    h.feed(ev.customer("C1", limit=1000.0))
    h.feed(ev.invoice("C1", "I-1", "SO-1", 900.0, days=1))
    [decision] = h.feed(ev.order("C1", "SO-1", 900.0)).decisions
    assert (decision.exposure_before, decision.exposure_after, decision.outcome.value) == (0.0, 900.0, "approve")
    assert h.states["C1"].exposure() == 900_00


def test_an_event_from_the_future_is_dead_lettered_and_moves_no_clock_one_from_the_past_is_applied():
    h = Harness(future_tolerance_h=24)
    produced = datetime.fromtimestamp(1_800_000_000.0, UTC)  # the Harness's produce time
    h.feed(ev.customer("C1", limit=1000.0))
    future = ev.order("C1", "SO-F", 10.0) | {"event_time": (produced + timedelta(days=2)).isoformat()}
    past = ev.order("C1", "SO-P", 10.0) | {"event_time": "2016-03-02T09:00:00Z"}
    result = h.feed(future, past, ev.order("C1", "SO-N", 10.0))
    [letter] = result.dead_letters
    assert letter.code == "event_time_in_future" and "48.0 h after the message was produced" in letter.reason
    assert [d.order_id for d in result.decisions] == ["SO-P", "SO-N"] and h.states["C1"].exposure() == 20_00
    assert h.states["C1"].last_event_time < produced.timestamp()
    within = ev.order("C1", "SO-W", 10.0) | {"event_time": (produced + timedelta(hours=23)).isoformat()}
    assert [d.order_id for d in h.feed(within).decisions] == ["SO-W"]  # clock skew within the tolerance


def test_a_processing_bug_dead_letters_that_message_and_the_batch_goes_on(monkeypatch):
    h = Harness()
    h.feed(ev.customer("C1"))

    def broken(*args, **kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(CustomerState, "cancel_order", broken)
    result = h.feed(ev.cancel("C1", "SO-1"), ev.order("C1", "SO-2", 5.0))
    assert [(d.code, d.reason) for d in result.dead_letters] == [("processing_error", "ZeroDivisionError: boom")]
    assert [d.order_id for d in result.decisions] == ["SO-2"]


def test_a_failure_in_a_round_dead_letters_only_its_order(monkeypatch):
    h = Harness()
    h.feed(*(ev.customer(f"C{i}") for i in range(6)))
    context = Pipeline._context

    def broken_for_so3(pending, scores):
        if pending.event.order_id == "SO-3":
            raise ZeroDivisionError("boom")
        return context(pending, scores)

    monkeypatch.setattr(Pipeline, "_context", staticmethod(broken_for_so3))
    result = h.feed(*(ev.order(f"C{i}", f"SO-{i}", 5.0) for i in range(6)))  # one round of six orders
    assert [(d.code, d.reason) for d in result.dead_letters] == [("processing_error", "ZeroDivisionError: boom")]
    assert sorted(d.order_id for d in result.decisions) == ["SO-0", "SO-1", "SO-2", "SO-4", "SO-5"]
    assert "SO-3" not in h.states["C3"].orders


def test_desk_release_makes_a_held_order_exposure_once_and_a_second_release_changes_nothing():
    h = Harness()
    h.feed(ev.customer("C1", limit=1000.0))
    assert h.feed(ev.order("C1", "SO-1", 1200.0)).decisions[0].outcome.value == "hold"
    assert h.states["C1"].exposure() == 0
    assert h.feed(ev.order("C1", "SO-2", 10.0)).decisions[0].outcome.value == "approve"
    release = ev.desk("hold.release", "C1", order_id="SO-1", comment="Prepayment received.")
    result = h.feed(release)
    assert h.states["C1"].exposure() == 1210_00 and result.holds_closed == [("C1", "SO-1")]
    [resolved] = result.resolutions
    assert (resolved.type, resolved.order_id, resolved.actor, resolved.comment) == (
        "hold.released", "SO-1", "alice", "Prepayment received.")
    assert [(a.applied, a.detail) for a in result.desk_actions] == [(True, "released")]
    again = h.feed(ev.desk("hold.release", "C1", order_id="SO-1"))  # a second analyst clicks too
    redelivered = h.feed(release)
    assert h.states["C1"].exposure() == 1210_00
    assert again.resolutions == [] and again.holds_closed == [] and again.changed == {}
    assert [(a.applied, a.detail) for a in again.desk_actions] == [(False, "order SO-1 is open, not held")]
    assert [(a.applied, a.detail) for a in redelivered.desk_actions] == [(False, "command already applied")]


def test_desk_reject_keeps_the_order_out_of_exposure_and_tells_the_erp():
    h = Harness()
    h.feed(ev.customer("C1", limit=1000.0))
    held = h.feed(ev.order("C1", "SO-1", 1200.0)).decisions[0]
    result = h.feed(ev.desk("hold.reject", "C1", order_id="SO-1", comment="Customer in dispute."))
    assert [(r.type, r.hold_id) for r in result.resolutions] == [("order.rejected", held.decision_id)]
    assert h.states["C1"].orders["SO-1"].status == "rejected" and h.states["C1"].exposure() == 0
    late_release = h.feed(ev.desk("hold.release", "C1", order_id="SO-1"))
    assert late_release.desk_actions[0].detail == "order SO-1 is rejected, not held"
    assert h.states["C1"].exposure() == 0


def test_desk_sets_limit_and_stop_and_the_next_order_is_decided_with_them():
    h = Harness()
    h.feed(ev.customer("C1", limit=1000.0))
    h.feed(ev.desk("credit_limit.set", "C1", credit_limit=5000.0, currency="EUR"))
    assert h.feed(ev.order("C1", "SO-1", 3000.0)).decisions[0].outcome.value == "approve"
    h.feed(ev.customer("C1", limit=1000.0, days=-10, kind="customer.updated"))  # an older CRM record
    assert h.states["C1"].profile.credit_limit == 5000_00
    result = h.feed(ev.desk("on_stop.set", "C1", on_stop=True, comment="Legal dispute."))
    assert result.desk_actions[0].detail == "put on stop"
    assert [r.code for r in h.feed(ev.order("C1", "SO-2", 10.0)).decisions[0].reasons] == ["CUSTOMER_ON_STOP"]
    unknown = h.feed(ev.desk("on_stop.set", "C9", on_stop=True))
    assert unknown.desk_actions[0].applied is False and "no credit profile" in unknown.desk_actions[0].detail


def test_desk_commands_without_a_comment_are_dead_lettered():
    h = Harness()
    result = h.feed(ev.desk("hold.release", "C1", order_id="SO-1", comment="  "))
    assert [x.code for x in result.dead_letters] == ["invalid_event"] and "comment" in result.dead_letters[0].reason


def test_closed_orders_outlive_the_retention_until_the_orders_topic_has_caught_up_with_the_ledger():
    """In a backlog the ledger topic can run weeks of event time ahead of the orders topic: an
    order invoiced and paid must not be forgotten before its amendment, still unread, arrives."""
    h = Harness(retention_days=30)
    h.feed(ev.customer("C1"), ev.order("C1", "SO-1", 100.0, days=0))
    h.feed(ev.invoice("C1", "INV-1", "SO-1", 100.0, days=3), ev.payment("C1", "P-1", "INV-1", 100.0, days=10),
           ev.invoice("C1", "INV-2", None, 5.0, days=60))  # the ledger, 60 days on
    amended = h.feed(ev.order("C1", "SO-1", 100.0, days=1, kind="order.amended"))
    assert [d.order_id for d in amended.decisions] == ["SO-1"] and amended.dead_letters == []
    assert "INV-1" in h.states["C1"].invoices  # paid 50 days before the ledger's clock
    h.feed(ev.order("C1", "SO-2", 10.0, days=61))  # the orders topic catches up: now it goes
    assert "INV-1" not in h.states["C1"].invoices
