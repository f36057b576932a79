"""Arbitrary input (property-based) and mutations of valid events: the pipeline never raises,
every message that is not a valid event is dead-lettered with a code and a reason, and valid
events around it are still applied and decided."""

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.generator import SalesSimulator
from streams.malformed import MUTATIONS, mutate
from streams.pipeline import RawMessage
from streams.topics import INPUT_TOPICS
from tests import events as ev
from tests.test_pipeline import Harness

SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner,
                                                                                          max_size=5), max_leaves=20)
EVENT_LIKE = st.fixed_dictionaries({"type": st.sampled_from(["order.placed", "payment.received", "customer.created",
                                                             "hold.release", "nope"]),
                                    "event_id": st.text(max_size=70), "customer_id": st.just("C1")},
                                   optional={"event_time": st.text(max_size=30), "total": JSON, "amount": JSON,
                                             "currency": st.text(max_size=4), "lines": JSON, "order_id": JSON})
def dumps(value) -> bytes:
    """JSON as a lax producer writes it: NaN, Infinity and integers of any size included."""
    return json.dumps(value).encode()


PAYLOADS = st.binary(max_size=200) | JSON.map(dumps) | EVENT_LIKE.map(dumps)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(payload=PAYLOADS, topic=st.sampled_from(INPUT_TOPICS))
def test_arbitrary_input_is_dead_lettered_with_a_reason_and_the_next_order_decided(payload, topic):
    h = Harness()
    h.feed(ev.customer("C1"))
    before = h.states["C1"].exposure()
    result = h.run(RawMessage(topic, 0, 99, b"C1", payload, 1_800_000_000.0), h.message(ev.order("C1", "SO-N", 10.0)))
    assert [d.order_id for d in result.decisions if d.order_id == "SO-N"] == ["SO-N"]
    for letter in result.dead_letters:
        assert letter.code and letter.reason and letter.raw == payload
    if not result.dead_letters:  # accepted: a valid event (hypothesis rarely writes one)
        assert result.changed or result.duplicates or result.decisions
    assert h.states["C1"].exposure() >= before


def test_every_mutation_of_valid_traffic_is_dead_lettered_and_changes_no_state():
    rng = random.Random(1)
    valid = [m for m in SalesSimulator(seed=2, total_events=600, customers=20, bad_rate=0.0)]
    h = Harness(future_tolerance_h=0)
    for m in valid:
        h.run(RawMessage(m.topic, 0, 0, m.key, m.value, 1_800_000_000.0))
    states = {c: s.to_json() for c, s in h.states.items()}
    kinds: dict[str, int] = {}
    for _ in range(1_000):
        bad = mutate(rng.choice(valid), rng)
        result = h.run(RawMessage(bad.topic, 0, 0, bad.key, bad.value, 1_800_000_000.0))
        if result.dead_letters:
            [letter] = result.dead_letters
            assert letter.reason and letter.raw == bad.value
            kinds[bad.kind] = kinds.get(bad.kind, 0) + 1
        else:  # a mutation that left a valid copy of an event: a duplicate, nothing changes
            assert not result.changed and not result.decisions
    assert set(kinds) == {f"bad:{name}" for name in MUTATIONS} and sum(kinds.values()) > 950
    assert {c: s.to_json() for c, s in h.states.items()} == states
