"""The Faust agents, driven through Faust's own ``test_context()`` (no broker)."""

import asyncio
from types import SimpleNamespace

import orjson
import pytest

from streams.app import build_app
from streams.settings import Settings
from tests import events as ev


class CapturedTopic:
    """Stands in for an output topic (there is no broker here): keeps what the agent publishes."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, dict]] = []

    async def send(self, key: bytes, value: bytes):
        self.sent.append((key, orjson.loads(value)))
        return _delivered()


class CapturedChangelog:
    """Stands in for the state changelog topic: keeps (partition, key, state) per write."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str, object]] = []

    async def send(self, key, value, partition, value_serializer=None):
        self.sent.append((partition, key, value))
        return _delivered()


def _delivered() -> asyncio.Future:
    """What a delivered send resolves to (the broker's metadata is not looked at)."""
    future = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


@pytest.fixture()
def sg(tmp_path):
    app = build_app(Settings(data_dir=str(tmp_path), batch_window_s=0.01))
    app.app.finalize()
    app.app.flow_control.resume()
    app.outputs = {name: CapturedTopic() for name in app.outputs}
    app.states.changelog = CapturedChangelog()
    return app


async def put_all(sg, *events):
    """Put each event into its topic's agent and wait for the agent to process it."""
    for event in events:
        agent = sg.app.agents[ev.topic_of(event)]
        async with agent.test_context() as test_agent:
            await test_agent.put(ev.encode(event), key=event["customer_id"].encode())
            for _ in range(100):
                state = sg.states.get(event["customer_id"])
                if state is not None and event["event_id"] in _seen_ids(state):
                    break
                await asyncio.sleep(0.01)


def _seen_ids(state) -> set[str]:
    ids = set(state.profile_event_ids)
    for order in state.orders.values():
        ids.update(order.event_ids)
    for invoice in state.invoices.values():
        ids.update(invoice.applied_ids)
    return ids


async def test_orders_agent_decides_and_publishes_decision_and_hold(sg):
    await put_all(sg, ev.customer("C7", limit=1000.0), ev.order("C7", "SO-1", 900.0), ev.order("C7", "SO-2", 900.0))
    decisions = [value for _, value in sg.outputs["decisions"].sent]
    assert [(d["order_id"], d["outcome"]) for d in decisions] == [("SO-1", "approve"), ("SO-2", "reject")]
    assert [value["order_id"] for _, value in sg.outputs["order-holds"].sent] == ["SO-2"]
    assert all(key == b"C7" for key, _ in sg.outputs["decisions"].sent)


async def test_ledger_agent_updates_the_same_customer_state(sg):
    await put_all(sg, ev.customer("C8"), ev.order("C8", "SO-1", 500.0),
                  ev.invoice("C8", "I-1", "SO-1", 500.0, days=1), ev.payment("C8", "P-1", "I-1", 120.0, days=2))
    state = sg.states.get("C8")
    assert (state.open_orders(), state.receivables()) == (0, 380_00)
    # every state change went to the changelog, keyed by customer, on the input's partition (0 here)
    assert [(p, k) for p, k, _ in sg.states.changelog.sent] == [(0, "C8")] * 4
    assert sg.states.changelog.sent[-1][2].receivables() == 380_00


async def test_bad_message_goes_to_dead_letters_and_agent_keeps_going(sg):
    agent = sg.app.agents["orders"]
    async with agent.test_context() as test_agent:
        await test_agent.put(b"not json at all", key=b"C9")
    await put_all(sg, ev.customer("C9"), ev.order("C9", "SO-1", 5.0))
    [(key, letter)] = sg.outputs["dead-letters"].sent
    assert key == b"C9" and letter["code"] == "not_json" and letter["source_topic"] == "orders"
    assert [value["order_id"] for _, value in sg.outputs["decisions"].sent] == ["SO-1"]


async def test_days_past_due_move_on_with_the_latest_event_time_without_new_events(sg):
    await put_all(sg, ev.customer("C5"), ev.invoice("C5", "I-1", None, 100.0, days=0, due_in_days=10))
    assert sg.snapshot("C5")["days_past_due"] == 0
    # another customer's event 40 days later moves this worker's clock on
    await put_all(sg, ev.customer("C6", days=40))
    snapshot = sg.snapshot("C5")
    assert snapshot["overdue_amount"] == 100.0 and snapshot["days_past_due"] == 29


async def test_agents_handling_a_new_customer_at_the_same_time_lose_nothing(sg):
    """An order and the master data of a customer never seen, in two agents at once: while the
    order's decision is being delivered, the customers agent must not create a second state
    that one of them then overwrites (a lost profile would hold every later order)."""

    class SlowTopic(CapturedTopic):
        async def send(self, key: bytes, value: bytes):
            await asyncio.sleep(0.05)
            return await super().send(key, value)

    sg.outputs = {name: SlowTopic() for name in sg.outputs}

    def event(payload: dict) -> SimpleNamespace:
        message = SimpleNamespace(partition=0, offset=0, key=payload["customer_id"].encode(),
                                  value=ev.encode(payload), timestamp=0.0)
        return SimpleNamespace(message=message)

    await asyncio.gather(sg.handle("orders", [event(ev.order("C-NEW", "SO-1", 10.0))]),
                         sg.handle("customers", [event(ev.customer("C-NEW"))]))
    state = sg.states.get("C-NEW")
    assert state.profile is not None and "SO-1" in state.orders and state.events_applied == 2


def example_event(offset: int, value: bytes) -> SimpleNamespace:
    return SimpleNamespace(message=SimpleNamespace(value=value, offset=offset, partition=0))


async def test_trainer_learns_examples_publishes_a_drift_alert_and_dead_letters_a_bad_example(tmp_path):
    sg = build_app(Settings(data_dir=str(tmp_path), anomaly_min_examples=0, credit_min_labels=0))
    sg.outputs = {name: CapturedTopic() for name in sg.outputs}

    def credit(i: int, late: bool) -> bytes:
        return orjson.dumps({"example_id": f"credit:C1:INV-{i}", "kind": "credit", "customer_id": "C1",
                             "features": {"risk_class": "B", "late_share": 0.1}, "late": late,
                             "event_time": "2026-03-01T00:00:00Z"})

    # The same kind of customer pays on time for a long while, then stops paying: the error rises.
    stream = [credit(i, False) for i in range(800)] + [credit(800 + i, True) for i in range(300)]
    events = [example_event(i, value) for i, value in enumerate(stream)]
    for start in range(0, len(events), 100):
        await sg.train(events[start:start + 100])
    await sg.train([example_event(len(events), b'{"example_id": "x"}')])

    alerts = [value for _, value in sg.outputs["model-alerts"].sent]
    assert alerts and alerts[0]["model"] == "credit" and alerts[0]["signal"] == "error"
    assert alerts[0]["mean_after"] > alerts[0]["mean_before"] and alerts[0]["type"] == "model.drift"
    assert sg.trainer.models.credit_examples == 1100
    (bad,) = [value for _, value in sg.outputs["dead-letters"].sent]
    assert bad["code"] == "invalid_event" and bad["source_topic"] == "model-examples"
    assert await sg.checkpoint_models() == 1100 and sg.pipeline.models.version == 1  # scorer took it
