"""What a batch adds to the metrics, read back from the registry."""

from prometheus_client import REGISTRY, generate_latest

from monitoring.batch_metrics import count_batch
from tests import events as ev
from tests.test_pipeline import Harness


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_decisions_holds_releases_and_dead_letters_are_counted():
    h = Harness()
    h.feed(ev.customer("C-BM1", limit=1000.0))
    before = {key: value(*key[:1], **dict(key[1:])) for key in [
        ("salesguard_decisions_total", ("outcome", "hold")),
        ("salesguard_salesperson_decisions_total", ("salesperson", "S-01"), ("outcome", "hold")),
        ("salesguard_salesperson_releases_total", ("salesperson", "S-01")),
        ("salesguard_dead_letters_total", ("code", "not_json")),
        ("salesguard_rule_hits_total", ("rule", "CREDIT_LIMIT_EXCEEDED"), ("action", "hold"), ("shadow", "false"))]}
    held = h.run(h.message(ev.order("C-BM1", "SO-BM1", 1200.0)), h.message({"customer_id": "C-BM1"},
                                                                         topic="orders", value=b"{not json"))
    count_batch(held)
    count_batch(h.feed(ev.desk("hold.release", "C-BM1", order_id="SO-BM1")))
    after = {key: value(*key[:1], **dict(key[1:])) for key in before}
    assert [after[key] - before[key] for key in before] == [1, 1, 1, 1, 1]
    # a salesperson's signals exist from their first decision on, so that rates compute
    assert REGISTRY.get_sample_value("salesguard_salesperson_anomalies_total", {"salesperson": "S-01"}) is not None


def test_a_batch_of_many_decisions_adds_each_one():
    h = Harness()
    h.feed(*[ev.customer(f"C-BN{i}", limit=1000.0) for i in range(5)])
    key = ("salesguard_decisions_total", {"outcome": "hold"})
    hits = ("salesguard_rule_hits_total", {"rule": "CREDIT_LIMIT_EXCEEDED", "action": "hold", "shadow": "false"})
    before = value(key[0], **key[1]), value(hits[0], **hits[1])
    count_batch(h.run(*[h.message(ev.order(f"C-BN{i}", f"SO-BN{i}", 1200.0)) for i in range(5)]))
    assert (value(key[0], **key[1]) - before[0], value(hits[0], **hits[1]) - before[1]) == (5, 5)


def test_counters_are_exported_without_created_series():
    h = Harness()
    count_batch(h.run(h.message(ev.customer("C-BM3", limit=1000.0)), h.message(ev.order("C-BM3", "SO-BM3", 10.0))))
    exported = generate_latest().decode()
    assert "salesguard_decisions_total{" in exported and "_created" not in exported
