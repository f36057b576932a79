"""Training, checkpointing and restoring models: nothing learned twice, nothing lost, and a
restored model predicts exactly what the saved one did."""

import asyncio
import math
import random

import pytest

from detectors.risk_models import ModelSnapshotError, RiskModels
from streams import model_evaluation
from streams.contracts import TrainingExample
from streams.exposure import DAY
from streams.features import credit_features
from streams.model_store import Checkpoint, MemoryModelStore, ModelStoreError
from streams.trainer import LEARN_CHUNK, CreditQuality, RecentIds, Trainer
from tests import events as ev
from tests.test_pipeline import Harness


def simulated_examples(seed: int = 5, events: int = 3000) -> list[TrainingExample]:
    """Order examples and invoice outcomes of simulated traffic, as the pipeline emits them."""
    return model_evaluation.simulated_examples(seed, events, late_payment_days=10)


def make_models() -> RiskModels:
    return RiskModels(seed=0, anomaly_min_examples=100, credit_min_labels=20)


def probes(examples: list[TrainingExample]) -> list[tuple[dict, dict]]:
    orders = [x.features for x in examples if x.kind == "order"][:100]
    credits = [x.features for x in examples if x.kind == "credit"][:100]
    return list(zip(orders, credits, strict=False))


def at_offsets(examples: list[TrainingExample], start: int = 0, stop: int | None = None):
    """``examples[start:stop]`` as a trainer batch: each with its offset on the examples topic."""
    return [(x, i + start) for i, x in enumerate(examples[start:stop])]


def recording_replay(examples: list[TrainingExample]):
    """A trainer's ``replay`` reading ``examples`` by offset, and the ranges it was asked for."""
    asked: list[tuple[int, int]] = []

    async def replay(start, end):
        asked.append((start, end))
        return at_offsets(examples, start, end)

    return replay, asked


def kinds(examples: list[TrainingExample]) -> tuple[int, int]:
    """How many order examples and invoice outcomes ``examples`` hold."""
    return sum(1 for x in examples if x.kind == "order"), sum(1 for x in examples if x.kind == "credit")


def test_simulated_traffic_yields_both_kinds_of_examples_with_late_labels():
    examples = simulated_examples()
    credit = [x for x in examples if x.kind == "credit"]
    assert len(credit) > 100 and 0.05 < sum(x.late for x in credit) / len(credit) < 0.6


def test_checkpoint_then_restore_gives_the_same_predictions():
    examples = simulated_examples()

    async def run():
        store = MemoryModelStore()
        first = Trainer(store, make_models)
        await first.learn(at_offsets(examples))
        acked = await first.checkpoint()
        second = Trainer(store, make_models)  # a restarted worker
        await second.learn([])  # takes the newest version
        return first, second, acked

    first, second, acked = asyncio.run(run())
    assert acked == len(examples) and second.models.version == first.models.version == 1
    assert second.offset == len(examples) - 1
    for order, credit in probes(examples):
        assert second.models.score(order, credit) == first.models.score(order, credit)
    scored = first.models.score(*probes(examples)[0])
    assert scored.anomaly is not None and scored.late_payment is not None


def test_a_restarted_trainer_replays_what_the_checkpoint_missed_and_learns_nothing_twice():
    examples = simulated_examples()[:500]

    async def run():
        store = MemoryModelStore()
        first = Trainer(store, make_models)
        await first.learn(at_offsets(examples, 0, 300))
        await first.checkpoint()
        await first.learn(at_offsets(examples, 300, 400))  # acked, never saved: crash
        restarted = Trainer(store, make_models, replay)
        # the consumer resumes after the acked offsets; a duplicate of an early example comes too
        await restarted.learn(at_offsets(examples, 400) + [(examples[10], 500)])
        return restarted.models

    replay, replayed = recording_replay(examples)
    models = asyncio.run(run())
    assert replayed == [(299, 400)]  # from the checkpoint's last record, learned already: skipped
    assert (models.order_examples, models.credit_examples) == kinds(examples)


def test_a_checkpoint_covering_part_of_a_record_loses_none_of_the_rest_of_it():
    examples = simulated_examples()[:600]
    in_records = [(x, i // 150) for i, x in enumerate(examples)]  # 4 records of 150 examples

    async def replay(start, end):
        replayed.append((start, end))
        return [(x, offset) for x, offset in in_records if start <= offset < end]

    async def run():
        store = MemoryModelStore()
        first = Trainer(store, make_models, replay)
        await first.learn(in_records[:225])  # records 0 and half of 1 (a caller may cut a record)
        assert await first.checkpoint() == 225 and (await store.load()).offset == 1
        learning = asyncio.ensure_future(first.learn(in_records[225:450]))  # acked when taken
        await asyncio.sleep(0)  # a chunk is learned, then a crash
        learning.cancel()
        restarted = Trainer(store, make_models, replay)
        await restarted.learn(in_records[450:])  # the consumer resumes at record 3
        return restarted.models

    replayed: list[tuple[int, int]] = []
    models = asyncio.run(run())
    assert replayed == [(1, 3)]  # from the checkpoint's last record: its first half is skipped
    assert (models.order_examples, models.credit_examples) == kinds(examples)  # each once


def test_a_checkpoint_asked_for_while_a_batch_is_learned_waits_for_the_batch():
    examples = simulated_examples()[:450]

    async def run():
        store = MemoryModelStore()
        trainer = Trainer(store, make_models)
        learning = asyncio.ensure_future(trainer.learn(at_offsets(examples)))
        await asyncio.sleep(0)  # the batch's first chunk is learned; the timer asks for a checkpoint
        covered = await trainer.checkpoint()
        assert learning.done()
        return covered, await store.load()

    covered, saved = asyncio.run(run())
    assert covered == 450 and saved.offset == 449 and LEARN_CHUNK < 450


def test_a_trainer_that_loses_the_race_takes_the_newer_version_and_relearns_its_examples():
    examples = simulated_examples()[:400]

    async def run():
        store = MemoryModelStore()
        old_owner = Trainer(store, make_models, replay)
        new_owner = Trainer(store, make_models)  # learns only what it is given: 100-399
        await old_owner.learn(at_offsets(examples, 0, 200))
        await new_owner.learn(at_offsets(examples, 100, 400))
        assert await new_owner.checkpoint() == 300
        assert await old_owner.checkpoint() == 0  # lost: version 1 exists now
        # it took version 1 and read its 200 unsaved examples back (not kept in memory)
        assert replayed[-1] == (0, 200) and old_owner.models.version == 1
        assert await old_owner.checkpoint() == 200
        return store, old_owner.models

    replay, replayed = recording_replay(examples)
    store, models = asyncio.run(run())
    assert asyncio.run(store.version()) == 2
    assert models.order_examples + models.credit_examples == 400  # each of the 400 once


def test_unsaved_examples_that_cannot_be_read_back_yet_are_relearned_with_the_next_batch():
    examples = simulated_examples()[:400]
    replay, replayed = recording_replay(examples)
    broker_down = [True]

    async def flaky_replay(start, end):
        if broker_down[0]:
            raise ConnectionError("broker unreachable")
        return await replay(start, end)

    async def run():
        store = MemoryModelStore()
        old_owner, new_owner = Trainer(store, make_models, flaky_replay), Trainer(store, make_models)
        await old_owner.learn(at_offsets(examples, 0, 200))
        await new_owner.learn(at_offsets(examples, 100, 300))
        await new_owner.checkpoint()
        assert await old_owner.checkpoint() == 0  # lost the race, and cannot read its examples back
        assert old_owner.models.version == 0 and old_owner.unsaved.count == 200  # nothing changed
        broker_down[0] = False
        await old_owner.learn(at_offsets(examples, 300, 400))  # takes version 1, reads 0-299 back
        assert old_owner.models.version == 1 and replayed == [(0, 300)]
        return old_owner.models

    models = asyncio.run(run())
    assert (models.order_examples, models.credit_examples) == kinds(examples)  # each once


def test_a_damaged_snapshot_is_refused():
    data = bytearray(RiskModels().to_bytes())
    data[-5] ^= 0xFF
    with pytest.raises(ModelSnapshotError):
        RiskModels.from_bytes(bytes(data))


def test_a_customer_turning_into_a_late_payer_raises_the_learned_probability():
    """Delayed labels through the pipeline: the model learns from invoices that were paid
    late, and a customer whose history turns late gets a higher probability."""
    models = make_models()
    for example in simulated_examples(seed=8, events=6000):
        if example.kind == "credit":
            models.learn_credit(example.features, bool(example.late))
    h = Harness(late_payment_days=10)
    h.feed(ev.customer("C1", limit=50_000.0))
    probabilities = []
    for i in range(6):
        start = i * 40
        h.feed(ev.order("C1", f"SO-{i}", 1000.0, days=start))
        h.feed(ev.invoice("C1", f"INV-{i}", f"SO-{i}", 1000.0, days=start + 1, due_in_days=14))
        paid_after = 10 if i < 2 else 45  # on time at first, then ever later
        h.feed(ev.payment("C1", f"P-{i}", f"INV-{i}", 1000.0, days=start + paid_after))
        at = ev.T0.timestamp() + (start + 39) * DAY
        probabilities.append(models.score({}, credit_features(h.states["C1"], at, 1000_00)).late_payment)
    assert probabilities[-1] > probabilities[1] + 0.1


def test_an_unloadable_checkpoint_is_replaced_by_new_models_on_top_of_its_version():
    async def run():
        store = MemoryModelStore()
        await store.save(Checkpoint(5, b"not a snapshot", b"", offset=41), previous=0)
        trainer = Trainer(store, make_models)
        await trainer.learn([(x, 42 + i) for i, x in enumerate(simulated_examples()[:10])])
        return trainer, await trainer.checkpoint(), await store.version()

    trainer, covered, version = asyncio.run(run())
    assert covered == 10 and version == 6 and trainer.models.order_examples + trainer.models.credit_examples == 10


def test_an_order_unusual_for_its_salesperson_scores_higher_than_the_same_order_for_another():
    import random

    rng = random.Random(2)
    models = RiskModels(seed=0, anomaly_min_examples=0)

    def order(discount: float) -> dict:
        return {"amount_ratio": rng.lognormvariate(0, 0.3), "log_amount": rng.gauss(7.5, 0.5),
                "max_discount": discount, "hour": rng.uniform(8, 18)}

    for _ in range(1500):  # S-LOW never discounts, S-HIGH always gives 30 %
        models.learn_order(order(0.0), "S-LOW")
        models.learn_order(order(0.3), "S-HIGH")
    same = order(0.3)
    unusual, usual = models.score(same, {}, "S-LOW"), models.score(same, {}, "S-HIGH")
    assert unusual.anomaly > usual.anomaly
    assert unusual.anomaly >= 0.8 and "discount_vs_salesperson" in dict(unusual.anomaly_factors)


class UnreachableFirst(MemoryModelStore):
    """A store that is out of reach until ``reachable`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.reachable = False

    async def version(self) -> int:
        if not self.reachable:
            raise ModelStoreError("down")
        return await super().version()

    async def save(self, checkpoint, previous):
        if not self.reachable:
            raise ModelStoreError("down")
        return await super().save(checkpoint, previous)


def test_the_trainer_learns_on_while_the_store_is_down_and_saves_when_it_is_back():
    examples = simulated_examples()[:100]

    async def run():
        store = UnreachableFirst()
        trainer = Trainer(store, make_models)
        await trainer.learn(at_offsets(examples, 0, 50))
        with pytest.raises(ModelStoreError):
            await trainer.checkpoint()
        store.reachable = True
        await trainer.learn(at_offsets(examples, 50))
        return trainer, await trainer.checkpoint(), await store.version()

    trainer, covered, version = asyncio.run(run())
    assert covered == 100 and version == 1
    assert trainer.models.order_examples + trainer.models.credit_examples == 100


def test_the_trainer_measures_the_late_payment_model_on_outcomes_it_had_not_learned_yet():
    examples = simulated_examples()
    trainer = Trainer(MemoryModelStore(), make_models)
    asyncio.run(trainer.learn(at_offsets(examples)))
    credit = [x for x in examples if x.kind == "credit"]
    assert trainer.credit_quality.outcomes == len(credit)
    assert 0.6 < trainer.credit_quality.roc_auc <= 1.0  # better than chance on simulated payers
    assert 0.0 < trainer.credit_quality.log_loss < 0.69  # better than a coin
    asyncio.run(trainer.learn(at_offsets(examples)))  # redelivered: learned, and measured, once
    assert trainer.credit_quality.outcomes == len(credit)


def test_credit_quality_is_the_exact_auc_and_log_loss_of_the_last_window():
    rng = random.Random(1)
    quality = CreditQuality(window=200)
    outcomes = [(rng.random() < 0.3, round(rng.uniform(0.01, 0.99), 2)) for _ in range(1500)]  # rounded: ties
    for late, predicted in outcomes:
        quality.update(late, predicted)
    window = outcomes[-200:]
    late = [p for is_late, p in window if is_late]
    paid = [p for is_late, p in window if not is_late]
    pairs = sum((a > b) + 0.5 * (a == b) for a in late for b in paid) / (len(late) * len(paid))
    loss = sum(-math.log(p if is_late else 1 - p) for is_late, p in window) / len(window)
    assert quality.outcomes == 1500
    assert quality.roc_auc == pytest.approx(pairs) and quality.log_loss == pytest.approx(loss)


def test_recent_ids_remember_at_least_the_last_capacity_ids_also_after_a_checkpoint():
    ids = RecentIds(capacity=1_000, chunk=100)
    assert all(ids.add(f"credit:C-{i}:I-{i}") for i in range(2_550))
    restored = RecentIds.from_bytes(ids.to_bytes(), capacity=1_000, chunk=100)
    for remembered in (ids, restored):
        assert not any(remembered.add(f"credit:C-{i}:I-{i}") for i in range(1_550, 2_550))  # the last 1,000
    assert ids.add("credit:C-0:I-0") and restored.add("credit:C-0:I-0")  # long forgotten
    assert len(ids.to_bytes()) <= 8 * (1_000 + 2 * 100)


def test_recent_ids_added_many_at_a_time_remember_exactly_as_one_at_a_time():
    rng = random.Random(11)
    ids = [f"order:e{rng.randrange(3_000)}" for _ in range(6_000)]  # repeats, near and far apart
    one_by_one, many = RecentIds(capacity=1_000, chunk=100), RecentIds(capacity=1_000, chunk=100)
    expected = [one_by_one.add(example_id) for example_id in ids]
    got = [new for start in range(0, len(ids), 137) for new in many.add_many(ids[start:start + 137])]
    assert got == expected and False in got and True in got
    assert many.to_bytes() == one_by_one.to_bytes()


def test_a_trainer_regaining_the_examples_replays_what_a_trainer_that_crashed_meanwhile_took():
    examples = simulated_examples()[:500]
    replay, replayed = recording_replay(examples)

    async def run():
        store = MemoryModelStore()
        first = Trainer(store, make_models, replay)
        await first.learn(at_offsets(examples, 0, 200))
        await first.checkpoint()
        other = Trainer(store, make_models, replay)  # takes the partition over, acks 200-349, crashes unsaved
        await other.learn(at_offsets(examples, 200, 350))
        await first.learn(at_offsets(examples, 350))  # the partition is back; the newest version is its own
        await first.learn(at_offsets(examples, 350, 360))  # redelivered: nothing to replay
        return first.models

    models = asyncio.run(run())
    assert replayed == [(199, 200), (200, 350)]  # the other from the checkpoint's record; then what it took
    assert (models.order_examples, models.credit_examples) == kinds(examples)
