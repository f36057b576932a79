"""The worker's batch handling (``SalesguardApp.consume``/``handle``/``train``) without a broker:
what would be produced is captured instead. The batch consumer itself runs against the real
broker in the integration tests."""

import asyncio
import base64
import itertools
import types

import orjson
import pytest
from faust.types import TP, Message
from prometheus_client import REGISTRY

from streams import training as training_module
from streams.app import build_app
from streams.batch_consumer import POLL_BATCHES, BatchConsumer
from streams.contracts import TrainingExample
from streams.exposure import CustomerState
from streams.liveness import Health, Liveness
from streams.pipeline import RawMessage
from streams.settings import Settings
from tests import events as ev

offsets = itertools.count()


class CapturedOutbox:
    """Stands in for the Kafka producer (there is no broker here): keeps what the worker sends."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.records: list = []
        self.delay_s = delay_s

    async def submit(self, records):
        """Keeps ``records`` now; what it returns completes after ``delay_s`` (the broker's ack)."""
        self.records.extend(records)
        return asyncio.ensure_future(asyncio.sleep(self.delay_s))

    def sent(self, topic: str) -> list[tuple[bytes, dict]]:
        """(key, value) of every record sent to ``topic``."""
        return [(r.key, orjson.loads(r.value)) for r in self.records if r.topic == topic]

    def examples(self) -> list[dict]:
        """Every training example sent, out of the ``model-examples`` records that hold them."""
        return [example for _, record in self.sent("model-examples") for example in record]

    def changelog(self) -> list[tuple[int, str, CustomerState]]:
        """(partition, customer id, state) of every state write."""
        return [(r.partition, orjson.loads(r.key), CustomerState.from_json(r.value))
                for r in self.records if r.topic.endswith("-changelog")]


def captured(sg, delay_s: float = 0.0) -> CapturedOutbox:
    outbox = CapturedOutbox(delay_s)
    sg.submit = outbox.submit
    return outbox


@pytest.fixture()
def sg(tmp_path):
    app = build_app(Settings(data_dir=str(tmp_path)))
    app.outbox = captured(app)
    return app


def raw(event: dict) -> RawMessage:
    return RawMessage(topic=ev.topic_of(event), partition=0, offset=next(offsets),
                      key=event["customer_id"].encode(), value=ev.encode(event), timestamp=0.0)


async def put_all(sg, *events):
    """Handle each event in a batch of its own."""
    for event in events:
        await sg.handle([raw(event)])


async def test_orders_agent_decides_and_publishes_decision_and_hold(sg):
    await put_all(sg, ev.customer("C7", limit=1000.0), ev.order("C7", "SO-1", 900.0), ev.order("C7", "SO-2", 900.0))
    decisions = [value for _, value in sg.outbox.sent("decisions")]
    assert [(d["order_id"], d["outcome"]) for d in decisions] == [("SO-1", "approve"), ("SO-2", "reject")]
    assert [value["order_id"] for _, value in sg.outbox.sent("order-holds")] == ["SO-2"]
    assert all(key == b"C7" for key, _ in sg.outbox.sent("decisions"))


async def test_ledger_agent_updates_the_same_customer_state(sg):
    await put_all(sg, ev.customer("C8"), ev.order("C8", "SO-1", 500.0),
                  ev.invoice("C8", "I-1", "SO-1", 500.0, days=1), ev.payment("C8", "P-1", "I-1", 120.0, days=2))
    state = sg.states.get("C8")
    assert (state.open_orders(), state.receivables()) == (0, 380_00)
    # every state change went to the changelog, keyed by customer, on the input's partition (0 here)
    assert [(p, k) for p, k, _ in sg.outbox.changelog()] == [(0, "C8")] * 4
    assert sg.outbox.changelog()[-1][2].receivables() == 380_00


async def test_a_fetched_batch_from_every_input_topic_is_decided_and_a_bad_message_dead_lettered(sg):
    """What the batch consumer hands over: Faust messages of the full (prefixed) topic names."""
    sg.settings = sg.settings.model_copy(update={"topic_prefix": "prod."})
    events = [ev.customer("C9"), ev.order("C9", "SO-1", 5.0)]
    messages = [Message(f"prod.{ev.topic_of(e)}", 0, i, 0.0, 0, None, b"C9", ev.encode(e), None) for i, e in
                enumerate(events)]
    messages.insert(1, Message("prod.orders", 0, 5, 0.0, 0, None, b"C9", b"not json at all", None))
    result = await (await sg.consume(messages))
    assert result.consumed == {"customers": 1, "orders": 2}
    [(key, letter)] = sg.outbox.sent("prod.dead-letters")
    assert key == b"C9" and letter["code"] == "not_json" and letter["source_topic"] == "orders"
    assert [value["order_id"] for _, value in sg.outbox.sent("prod.decisions")] == ["SO-1"]


async def test_days_past_due_move_on_with_the_latest_event_time_without_new_events(sg):
    await put_all(sg, ev.customer("C5"), ev.invoice("C5", "I-1", None, 100.0, days=0, due_in_days=10))
    assert sg.snapshot("C5")["days_past_due"] == 0
    # another customer's event 40 days later moves this worker's clock on
    await put_all(sg, ev.customer("C6", days=40))
    snapshot = sg.snapshot("C5")
    assert snapshot["overdue_amount"] == 100.0 and snapshot["days_past_due"] == 29


async def test_batches_handling_a_new_customer_at_the_same_time_lose_nothing(sg):
    """An order and the master data of a customer never seen, in two batches at once (a batch
    and a timer, or two fetches): while the order's decision is being delivered, the other batch
    must not create a second state that one of them then overwrites (a lost profile would hold
    every later order)."""
    captured(sg, delay_s=0.05)
    await asyncio.gather(sg.handle([raw(ev.order("C-NEW", "SO-1", 10.0))]), sg.handle([raw(ev.customer("C-NEW"))]))
    state = sg.states.get("C-NEW")
    assert state.profile is not None and "SO-1" in state.orders and state.events_applied == 2


async def test_the_next_batch_is_decided_while_one_is_written_and_states_follow_their_outputs(sg):
    """Batches overlap: the second is decided while the broker has not acknowledged the first's
    decision yet; each batch's state goes out only after its decisions, and in batch order."""
    outbox = captured(sg, delay_s=0.05)
    first = await sg.begin([raw(ev.order("C-A", "SO-A", 10.0))])
    second = await sg.begin([raw(ev.order("C-B", "SO-B", 10.0))])
    assert not first.done() and [v["order_id"] for _, v in outbox.sent("decisions")] == ["SO-A", "SO-B"]
    assert outbox.changelog() == []  # no state before its batch's outputs are acknowledged
    await second
    assert first.done()
    changelog = "salesguard-customer-state-changelog"
    sent = [(r.topic, r.key) for r in outbox.records if r.topic in ("decisions", changelog)]
    assert sent == [("decisions", b"C-A"), ("decisions", b"C-B"), (changelog, b'"C-A"'), (changelog, b'"C-B"')]


class HeldAcks(CapturedOutbox):
    """Keeps what the worker sends; the broker acknowledges each call's records only when the
    test says so (``ack(i)``: the i-th call's)."""

    def __init__(self) -> None:
        super().__init__()
        self.acks: list[asyncio.Future] = []

    async def submit(self, records):
        self.records.extend(records)
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]

    async def ack(self, *calls: int) -> None:
        for call in calls:
            self.acks[call].set_result(None)
        for _ in range(5):  # let the writes waiting on them go on
            await asyncio.sleep(0)


async def test_a_batch_hands_its_states_over_behind_the_previous_batchs_without_waiting_for_their_ack(sg):
    """States of successive batches share the producer's queue: the second batch's state goes
    out while the first's is not acknowledged yet; each batch is done only once the batches
    before it are."""
    outbox = HeldAcks()
    sg.submit = outbox.submit
    first = await sg.begin([raw(ev.order("C-A", "SO-A", 10.0))])
    second = await sg.begin([raw(ev.order("C-B", "SO-B", 10.0))])
    await outbox.ack(1)  # the second batch's outputs: its state waits for the first batch's outputs
    assert outbox.changelog() == []
    await outbox.ack(0)  # the first batch's outputs: both states go out, in batch order
    assert [customer for _, customer, _ in outbox.changelog()] == ["C-A", "C-B"]
    assert len(outbox.acks) == 4 and not first.done()
    await outbox.ack(3)  # the second batch's state is acknowledged, the first's not yet
    assert not second.done()
    await outbox.ack(2)
    assert (await first).decisions[0].order_id == "SO-A" and (await second).decisions[0].order_id == "SO-B"


async def test_a_batch_whose_state_write_fails_fails_the_batch_after_it_too(sg):
    outbox = HeldAcks()
    sg.submit = outbox.submit
    first = await sg.begin([raw(ev.order("C-A", "SO-A", 10.0))])
    second = await sg.begin([raw(ev.order("C-B", "SO-B", 10.0))])
    await outbox.ack(0, 1)
    outbox.acks[2].set_exception(ConnectionError("broker gone"))  # the first batch's state
    await outbox.ack(3)
    for batch in (first, second):
        with pytest.raises(ConnectionError):
            await batch


async def test_a_batch_whose_outputs_fail_fails_the_batches_after_it_and_writes_no_state(sg):
    outbox = captured(sg)
    broken = asyncio.get_running_loop().create_future()
    broken.set_exception(ConnectionError("broker gone"))
    sg.submit = lambda records: _returning(outbox.records.extend(records), broken)
    first = await sg.begin([raw(ev.order("C-A", "SO-A", 10.0))])
    sg.submit = outbox.submit
    second = await sg.begin([raw(ev.order("C-B", "SO-B", 10.0))])
    for batch in (first, second):
        with pytest.raises(ConnectionError):
            await batch
    assert outbox.changelog() == []


async def _returning(_: object, value):
    return value


async def test_health_turns_stalled_when_input_waits_and_no_batch_is_written_for_stall_after_s(sg, caplog):
    consumer = sg.app.consumer
    assert isinstance(consumer, BatchConsumer) and sg.health().lag is None  # not started: no assignment
    orders, unrouted = TP("orders", 0), TP("salesguard-customer-state-changelog", 0)
    consumer.assignment = lambda: {orders, unrouted}
    consumer.highwater = {orders: 10, unrouted: 99}.get
    consumer._read_offset[orders] = 3  # offsets 4 … 9 wait
    consumer._active_partitions = {orders}
    now = [1000.0]
    sg.liveness = Liveness(stall_after_s=60.0, clock=lambda: now[0])
    assert sg.health() == Health(stalled=False, lag=6, seconds_since_progress=0.0)
    now[0] += 61
    assert sg.health().stalled and REGISTRY.get_sample_value("salesguard_consumer_stalled") == 1
    stalls = [r.getMessage() for r in caplog.records if "consumer stalled" in r.getMessage()]
    assert len(stalls) == 1 and "in test_health_turns_stalled" in stalls[0]  # what each task waits on
    # and where fetching stands: the routed partitions only, Faust's view beside the client's
    assert "orders[0]: active True, paused False, read 3, committed None, highwater 10; not assigned" in stalls[0]
    assert "changelog[0]" not in stalls[0]
    sg.health()
    assert sum("consumer stalled" in r.getMessage() for r in caplog.records) == 1  # once per stall
    await sg.handle([raw(ev.customer("C-LIVE"))])  # a batch written is progress
    assert not sg.health().stalled and REGISTRY.get_sample_value("salesguard_consumer_stalled") == 0
    consumer._read_offset[orders] = 9
    now[0] += 3600  # a quiet hour with nothing to read is no stall
    assert sg.health() == Health(stalled=False, lag=0, seconds_since_progress=0.0)


def test_the_input_lag_metric_of_a_worker_that_gave_its_partitions_away_is_zero():
    liveness = Liveness(stall_after_s=60.0)
    liveness.check(lag=42)
    assert REGISTRY.get_sample_value("salesguard_input_lag_messages") == 42
    liveness.check(lag=None)  # after a rebalance took its partitions: their new owner reports them
    assert REGISTRY.get_sample_value("salesguard_input_lag_messages") == 0


async def test_a_worker_forgets_the_customers_of_partitions_it_gave_away(sg):
    await sg.handle([raw(ev.customer("C-P0")), RawMessage(topic="customers", partition=1, offset=next(offsets),
                                                           key=b"C-P1", value=ev.encode(ev.customer("C-P1")),
                                                           timestamp=0.0)])
    assert sg.states.keep_only({0, 1}) == {"C-P0", "C-P1"}
    assert sg.states.keep_only({0}) == {"C-P0"}
    assert sg.states.get("C-P1") is None and sg.snapshot("C-P1") is None
    assert sg.states.keep_only({0, 1}) == {"C-P0"} and sg.snapshot("C-P0")["events_applied"] == 1


def example_message(offset: int, value: bytes, partition: int = 0) -> Message:
    return Message("model-examples", partition, offset, 0.0, 0, None, None, value, None)


def order_example(i: int, amount_ratio: float = 1.0) -> bytes:
    """An order example's JSON, id ``order:e<i>``."""
    return orjson.dumps({"example_id": f"order:e{i}", "kind": "order", "customer_id": "C1",
                         "features": {"amount_ratio": amount_ratio}, "event_time": "2026-03-01T00:00:00Z"})


def example_record(offset: int, *examples: bytes, partition: int = 0) -> Message:
    """A ``model-examples`` record holding ``examples`` (each a JSON object)."""
    return example_message(offset, b"[" + b",".join(examples) + b"]", partition)


async def test_trainer_learns_examples_publishes_a_drift_alert_and_dead_letters_a_bad_example(tmp_path):
    sg = build_app(Settings(data_dir=str(tmp_path), anomaly_min_examples=0, credit_min_labels=0))
    outbox = captured(sg)

    def credit(i: int, late: bool) -> bytes:
        return orjson.dumps({"example_id": f"credit:C1:INV-{i}", "kind": "credit", "customer_id": "C1",
                             "features": {"risk_class": "B", "late_share": 0.1}, "late": late,
                             "event_time": "2026-03-01T00:00:00Z"})

    # The same kind of customer pays on time for a long while, then stops paying: the error rises.
    stream = [credit(i, False) for i in range(800)] + [credit(800 + i, True) for i in range(300)]
    events = [example_record(i, *stream[start:start + 10], partition=1) for i, start in enumerate(range(0, 1100, 10))]
    for start in range(0, len(events), 10):
        await sg.training.train(events[start:start + 10])
    await sg.training.train([example_record(len(events), b'{"example_id": "x"}', partition=1)])

    alerts = [value for _, value in outbox.sent("model-alerts")]
    assert alerts and alerts[0]["model"] == "credit" and alerts[0]["signal"] == "error"
    assert alerts[0]["mean_after"] > alerts[0]["mean_before"] and alerts[0]["type"] == "model.drift"
    trainer = sg.training.trainers["credit"]
    assert trainer.models.credit_examples == 1100 and sg.training.trainers["order"].models is None  # nothing to learn
    exported = {sample.labels["metric"]: sample.value for family in REGISTRY.collect() for sample in family.samples
                if sample.name == "salesguard_model_quality"}  # computed when scraped
    assert exported == {"roc_auc": trainer.credit_quality.roc_auc, "log_loss": trainer.credit_quality.log_loss}
    assert 0.0 < exported["log_loss"] < 5.0
    (bad,) = [value for _, value in outbox.sent("dead-letters")]
    assert bad["code"] == "invalid_event" and bad["source_topic"] == "model-examples"
    assert await sg.training.checkpoint() == 1100  # the scorer took it, with untrained order models:
    assert sg.pipeline.models.label == "models-0.1" and sg.pipeline.models.credit_examples == 1100


async def test_each_kind_of_example_goes_to_its_partition_and_its_trainer_and_the_scorer_combines_both(tmp_path):
    sg = build_app(Settings(data_dir=str(tmp_path)))
    outbox = captured(sg)
    await put_all(sg, ev.customer("C1", limit=5000.0), ev.order("C1", "SO-1", 100.0, days=1),
                  ev.invoice("C1", "I-1", "SO-1", 100.0, days=2, due_in_days=10),
                  ev.payment("C1", "P-1", "I-1", 100.0, days=80))
    examples = [r for r in outbox.records if r.topic == "model-examples"]
    kinds = {x["kind"]: (r.partition, r.key) for r in examples for x in orjson.loads(r.value)}
    assert kinds == {"order": (0, b"order"), "credit": (1, b"credit")} and len(examples) == 2
    await sg.training.train([example_message(0, r.value, r.partition) for r in examples])  # each first on its partition
    assert {kind: (t.models.order_examples, t.models.credit_examples) for kind, t in sg.training.trainers.items()} == {
        "order": (1, 0), "credit": (0, 1)}
    await sg.training.checkpoint("order")
    assert sg.pipeline.models.label == "models-1.0"
    await sg.training.checkpoint()  # the credit trainer's first version; the order trainer has nothing new
    models = sg.pipeline.models
    assert models.label == "models-1.1" and (models.order_examples, models.credit_examples) == (1, 1)
    assert models.anomaly is not sg.training.trainers["order"].models.anomaly  # a copy: the trainer learns on


async def test_an_example_on_the_partition_of_another_kind_is_dead_lettered_not_learned(tmp_path):
    sg = build_app(Settings(data_dir=str(tmp_path)))
    outbox = captured(sg)
    await sg.training.train([example_record(0, order_example(1), partition=1)])
    (bad,) = [value for _, value in outbox.sent("dead-letters")]
    assert bad["partition"] == 1 and "of kind 'order' on the partition of 'credit' examples" in bad["reason"]
    assert sg.training.trainers["credit"].models is None and sg.training.trainers["order"].models is None


async def test_a_batchs_examples_of_a_kind_share_records_of_at_most_examples_per_record(sg, monkeypatch):
    monkeypatch.setattr("streams.contracts.learning.EXAMPLES_PER_RECORD", 2)
    await put_all(sg, ev.customer("C1", limit=5000.0))
    await sg.handle([raw(ev.order("C1", f"SO-{i}", 10.0 + i, days=i)) for i in range(3)])
    records = [(key, [x["example_id"] for x in value]) for key, value in sg.outbox.sent("model-examples")]
    orders = [f"order:{d['source_event_id']}" for _, d in sg.outbox.sent("decisions")]
    assert records == [(b"order", orders[:2]), (b"order", orders[2:])]


async def test_what_cannot_be_learned_in_a_record_is_dead_lettered_and_the_rest_learned(tmp_path):
    sg = build_app(Settings(data_dir=str(tmp_path)))
    outbox = captured(sg)
    credit = orjson.dumps({"example_id": "credit:C1:I-1", "kind": "credit", "customer_id": "C1", "features": {},
                           "late": True, "event_time": "2026-03-01T00:00:00Z"})
    await sg.training.train([example_record(0, order_example(0), b'{"example_id": "x"}', order_example(1), credit),
                    example_message(1, b'"order:e2"'), example_message(2, b"[{"), example_record(3, order_example(3)),
                    example_message(4, order_example(4))])  # one example, not in an array (the records before 5 Dec)
    bad = {(x["offset"], base64.b64decode(x["raw_b64"])): x["reason"] for _, x in outbox.sent("dead-letters")}
    credit_as_read = TrainingExample.model_validate_json(credit).model_dump_json().encode()
    assert set(bad) == {(0, b'{"example_id":"x"}'), (0, credit_as_read), (1, b'"order:e2"'), (2, b"[{")}
    assert bad[0, b'{"example_id":"x"}'].startswith("example 1 of the record is not valid")
    assert "of kind 'credit' on the partition of 'order' examples" in bad[0, credit_as_read]
    assert bad[1, b'"order:e2"'] == "not a JSON array of training examples" and bad[2, b"[{"].startswith("not JSON")
    assert sg.training.trainers["order"].models.order_examples == 4 and sg.training.trainers["credit"].models is None


async def test_a_trainer_catching_up_saves_a_model_version_every_checkpoint_examples(tmp_path, monkeypatch):
    monkeypatch.setattr(training_module, "CHECKPOINT_EXAMPLES", 250)
    sg = build_app(Settings(data_dir=str(tmp_path)))
    captured(sg)
    examples = [order_example(i, 1.0 + i % 7) for i in range(1000)]
    unsaved = []
    trainer = sg.training.trainers["order"]
    for start in range(0, len(examples), 100):  # no timer tick in between
        await sg.training.train([example_record((start + i) // 10, *examples[start + i:start + i + 10])  # 10 a record
                        for i in range(0, 100, 10)])
        unsaved.append(trainer.unsaved.count)
    assert max(unsaved) < 250 and trainer.models.version == 3  # saved after 300, 600 and 900
    assert sg.pipeline.models.version == 3 and trainer.models.order_examples == 1000


async def test_queued_records_are_learned_a_slice_of_examples_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(training_module, "CHECKPOINT_EXAMPLES", 250)
    monkeypatch.setattr(training_module, "LEARN_SLICE", 100)
    sg = build_app(Settings(data_dir=str(tmp_path)))
    captured(sg)
    examples = [order_example(i, 1.0 + i % 7) for i in range(1000)]
    records = [example_record(i, *examples[20 * i:20 * i + 20]) for i in range(50)]
    for start in range(0, 50, 20):  # fetched batches, each queued a record at a time
        await sg.training.enqueue(records[start:start + 20])
    queued = await sg.training.queued()
    assert queued == records and sg.training.queue.empty()
    trainer = sg.training.trainers["order"]
    learn, slices = trainer.learn, []

    async def learning(batch):
        slices.append(len(batch))
        return await learn(batch)

    trainer.learn = learning
    await sg.training.train(queued)
    assert slices == [100] * 10 and trainer.models.order_examples == 1000  # 5 records each
    assert trainer.models.version == 3  # saved after 300, 600 and 900: never more than 350 unsaved


async def test_the_overdue_refresh_labels_every_owing_customer_a_slice_at_a_time_deciding_batches_between(
        sg, monkeypatch):
    monkeypatch.setattr("streams.app.STATES_PER_SLICE", 2)
    outbox = captured(sg, delay_s=0.05)
    for i in range(5):
        await put_all(sg, ev.customer(f"C{i}", days=-10), ev.invoice(f"C{i}", f"I-{i}", None, 100.0, days=0,
                                                                      due_in_days=10))
    await put_all(sg, ev.customer("C9", days=90))  # moves the worker's clock past every due date
    refresh = asyncio.ensure_future(sg.refresh_overdue())
    await asyncio.sleep(0.01)  # the first slice is labelled
    await sg.handle([raw(ev.order("C9", "SO-9", 10.0, days=90))])
    assert not refresh.done()  # the order was decided in the middle of the pass
    assert await refresh == (5, 5)
    labels = [value for value in outbox.examples() if value["kind"] == "credit"]
    assert sorted(label["example_id"] for label in labels) == [f"credit:C{i}:I-{i}" for i in range(5)]
    assert all(label["late"] for label in labels)
    assert [value["order_id"] for _, value in outbox.sent("decisions")] == ["SO-9"]
    # the labels' states were written (a label is taken once, also after a restart) ...
    last_written = {customer: state for _, customer, state in outbox.changelog()}
    assert all(last_written[f"C{i}"].invoices[f"I-{i}"].features is None for i in range(5))
    # ... so the next pass labels nothing again
    assert await sg.refresh_overdue() == (0, 5)


async def test_the_overdue_refresh_waits_out_a_rebalance_whose_recovery_may_be_filling_states_in(sg):
    outbox = captured(sg)
    await put_all(sg, ev.customer("C1", days=-10), ev.invoice("C1", "I-1", None, 100.0, days=0, due_in_days=10),
                  ev.customer("C9", days=90))
    sg.app.rebalancing = True
    assert await sg.refresh_overdue() == (0, 0)
    assert outbox.examples() == [] and [c for _, c, _ in outbox.changelog()] == ["C1", "C1", "C9"]
    sg.app.rebalancing = False
    assert await sg.refresh_overdue() == (1, 1)


class ChangelogEvent:
    """What Faust's recovery hands the store: a record's key and value, and its message."""

    def __init__(self, key: str, state: CustomerState | None, partition: int = 0) -> None:
        self.key = key
        self.message = types.SimpleNamespace(value=None if state is None else state.to_json(), partition=partition)
        self.value = self.message.value  # the table's values are raw (the store holds the JSON)


def test_changelog_records_never_replace_a_state_by_one_that_applied_fewer_events(sg):
    newer, older, other = CustomerState("C-1"), CustomerState("C-1"), CustomerState("C-2")
    newer.events_applied, older.events_applied, other.events_applied = 23, 8, 1
    store = sg.states.table.data
    keep = lambda value: value  # noqa: E731 - raw keys and values
    store.apply_changelog_batch([ChangelogEvent("C-1", newer), ChangelogEvent("C-2", other, partition=3)], keep, keep)
    # a recovery cut short left an old record of C-1 in Faust's buffer, applied at the next rebalance
    store.apply_changelog_batch([ChangelogEvent("C-1", older), ChangelogEvent("__end-of-batch__", None)], keep, keep)
    assert sg.states.get("C-1") == newer and sg.states.get("C-2") == other
    assert sg.states.keep_only({3}) == {"C-2"}  # partitions recorded as recovery records them


def test_states_are_held_as_their_json_and_the_last_written_also_decoded(sg, monkeypatch):
    monkeypatch.setattr("streams.state_table.HOT_STATES", 2)
    states = [CustomerState(f"C-{i}", events_applied=i + 1) for i in range(3)]
    for i, state in enumerate(states):
        sg.states.stage({state.customer_id: (i, state)}, end_markers=False)
    assert sg.states.table.data.data["C-0"] == states[0].to_json()
    assert sg.states.get("C-0") == states[0] and sg.states.get("C-0") is not states[0]  # decoded anew
    assert sg.states.get("C-2") is states[2]  # among the last two written: kept decoded
    recovered = CustomerState("C-2", events_applied=9)
    keep = lambda value: value  # noqa: E731 - raw keys and values
    sg.states.table.data.apply_changelog_batch([ChangelogEvent("C-2", recovered, partition=2)], keep, keep)
    assert sg.states.get("C-2") == recovered  # the decoded copy of the older state is gone
    assert sg.states.keep_only({0, 1}) == {"C-0", "C-1"} and sg.states.get("C-2") is None


async def test_the_kafka_client_hands_the_worker_at_most_four_batches_of_records_per_poll(tmp_path):
    """Not everything the client has fetched at once: in a backlog, that is a fetch of every
    input partition, all turned into objects together (see ``POLL_BATCHES``)."""
    app = build_app(Settings(data_dir=str(tmp_path), batch_size=300)).app
    thread = app.consumer._thread
    client = thread._create_worker_consumer(app.transport)
    assert client._max_poll_records == POLL_BATCHES * 300 == 1200


async def test_a_worker_takes_no_records_between_giving_its_partitions_away_and_being_assigned_new_ones(sg):
    """Faust's table recovery resumes the flow when it completes, also after a rebalance revoked
    the partitions it recovered (see ``BatchConsumer.resume_flow``)."""
    consumer = sg.app.consumer
    rebalance: list[str] = []

    async def app_revoked(revoked: set) -> None:
        rebalance.append("revoked")

    async def app_assigned(assigned: set, generation_id: int) -> None:
        rebalance.append(f"assigned {generation_id}")

    consumer._on_partitions_revoked, consumer._on_partitions_assigned = app_revoked, app_assigned
    await consumer.on_partitions_revoked(set())
    consumer.stop_flow()  # as Faust's app does when partitions are revoked
    consumer.resume_flow()  # a recovery of the revoked partitions completing
    assert not consumer.flow_active and not consumer.can_resume_flow.is_set()
    await consumer.on_partitions_assigned(set(), 3)
    consumer.resume_flow()  # the recovery of the new assignment completing
    assert consumer.flow_active and consumer.can_resume_flow.is_set()
    assert rebalance == ["revoked", "assigned 3"]


def test_the_lag_of_a_worker_without_input_partitions_is_unknown_not_zero(sg, monkeypatch):
    """``/health``'s lag: None while the worker owns no partition it reads (not in the group yet,
    or more workers than partitions), else what waits on the partitions it owns."""
    consumer = sg.app.consumer
    orders, other = TP(sg.settings.topic("orders"), 1), TP("someone-elses-topic", 0)
    owned: set[TP] = {other}
    monkeypatch.setattr(consumer, "assignment", lambda: owned)
    monkeypatch.setattr(consumer, "highwater", lambda tp: 10)
    assert consumer.input_lag() is None
    owned.add(orders)
    assert consumer.input_lag() == 10  # nothing read or committed yet
    consumer._read_offset[orders] = 6
    assert consumer.input_lag() == 3


async def test_after_a_seek_back_nothing_acknowledged_before_it_is_committed(sg, monkeypatch):
    """Records sought back to are read again; offsets acknowledged before the seek must not be
    committed meanwhile, past records before them that wait to be read again."""
    consumer = sg.app.consumer
    ledger = TP(sg.settings.topic("ledger"), 3)
    monkeypatch.setattr(consumer, "assignment", lambda: {ledger})

    async def seek_to_committed() -> dict:
        return {ledger: None}  # nothing committed yet: read again from the start

    monkeypatch.setattr(consumer, "seek_to_committed", seek_to_committed)
    consumer._acked[ledger].extend(range(114, 238))  # handed over before the seek, offsets 0-113 dropped
    consumer._acked_index[ledger].update(range(114, 238))
    await consumer.perform_seek()
    assert consumer._new_offset(ledger) is None  # kept, a commit would take 238: past 0-113
