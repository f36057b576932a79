"""Where the models learn in a process: the trainer of each kind of example, fed from the
``model-examples`` partitions the process is assigned (see :mod:`streams.trainer`).

Training runs either inside each worker (``SALESGUARD_TRAINING=in-worker``: a worker that owns
a kind's partition trains that kind, between its batches of input) or in a process of its own
(``separate``: ``salesguard trainer``, its own consumer group, see :mod:`streams.trainer_app`;
the workers only score). Either way the scoring workers take the newest saved versions from the
model store.

Fetched ``model-examples`` records are queued (:meth:`Training.enqueue`) and learned by a task
(:meth:`Training.run`), so that a fetch of input events never waits for learning.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial

from aiokafka import TopicPartition
from faust.types import Message

from detectors.drift import Drift
from detectors.risk_models import RiskModels
from monitoring import metrics
from streams.contracts import DeadLetter, ModelAlert, TrainingExample, dumps
from streams.contracts.common import utc_from_timestamp
from streams.contracts.decisions import decision_id_for
from streams.contracts.learning import EXAMPLE_KINDS, EXAMPLE_PARTITIONS, read_example_record
from streams.kafka_clients import reader
from streams.model_store import MemoryModelStore, ModelStore, ModelStoreError, RedisModelStore
from streams.outbox import Record
from streams.settings import Settings
from streams.trainer import Trainer

log = logging.getLogger(__name__)

#: ``model-examples`` records the trainers may fall behind before consuming them waits. A record
#: holds a batch's examples of a kind (up to 250, ~60 KB in a backlog's batch of 500 events), so
#: a queue of 20 *fetched batches* could hold ~20 MB: with it a worker peaked at 282.8 and 290.4 MB
#: with 100,000 customers, queueing records at 275.0, 275.0 and 285.7 (``bench --events 300000
#: --customers 100000``, 5 Dec; the peak moves by ~10 MB from run to run).
TRAINING_QUEUE = 64
#: Examples decoded and then learned at a time (a trainer's checkpoint falls due in between,
#: see :data:`CHECKPOINT_EXAMPLES`).
LEARN_SLICE = 500
#: Examples learned since the last model version after which a trainer saves one without
#: waiting for its timer: what a trainer that restarts reads back and learns again is at most
#: this many (and the timer's worth). Examples not yet saved are not kept in memory (until 6 Dec
#: 2026 they were, ~2 KB each, up to this many per trainer; see :class:`streams.trainer.Unsaved`).
CHECKPOINT_EXAMPLES = 5_000

#: Produces records and waits until the broker has them all.
Send = Callable[[Sequence[Record]], Awaitable[None]]


def untrained_models(settings: Settings) -> RiskModels:
    """Models that have learned nothing yet, as ``settings`` configure them."""
    return RiskModels(seed=settings.model_seed, anomaly_min_examples=settings.anomaly_min_examples,
                      credit_min_labels=settings.credit_min_labels)


def model_stores(settings: Settings) -> dict[str, ModelStore]:
    """The model store of each kind of example: in Redis, or in memory without Redis (tests)."""
    return {kind: RedisModelStore(settings.redis_url, kind) if settings.redis_url else MemoryModelStore()
            for kind in EXAMPLE_KINDS}


@dataclass
class Training:
    """The trainer of each kind of example in one process, saving to ``stores``; ``send``
    publishes dead letters and drift alerts; ``on_saved`` runs after a checkpoint saved a new
    version (a worker that trains scores with it at once)."""

    settings: Settings
    stores: dict[str, ModelStore]
    send: Send
    on_saved: Callable[[], Awaitable[object]] | None = None
    trainers: dict[str, Trainer] = field(init=False)
    #: Whether the late-payment model's quality is on /metrics (once it has outcomes).
    quality_exported: bool = False
    #: ``model-examples`` records waiting for :meth:`run`.
    queue: asyncio.Queue[Message] = field(default_factory=lambda: asyncio.Queue(TRAINING_QUEUE))

    def __post_init__(self) -> None:
        self.trainers = {kind: Trainer(store, lambda: untrained_models(self.settings), kind=kind)
                         for kind, store in self.stores.items()}
        for kind, trainer in self.trainers.items():
            trainer.replay = partial(self.replay, kind)

    async def enqueue(self, messages: Sequence[Message]) -> None:
        """Queue fetched ``model-examples`` records for :meth:`run` (waits while it is
        :data:`TRAINING_QUEUE` records behind). They count as consumed then: a trainer that
        restarts replays what its last checkpoint does not cover."""
        for message in messages:
            await self.queue.put(message)

    async def queued(self) -> list[Message]:
        """The records waiting in the queue (at least one: waits for it)."""
        records = [await self.queue.get()]
        while not self.queue.empty():
            records.append(self.queue.get_nowait())
        return records

    async def run(self) -> None:
        """Learn the queued records as they come (the trainer task)."""
        while True:
            await self.train(await self.queued())

    async def train(self, messages: Sequence[Message]) -> None:
        """Learn ``model-examples`` records, each partition's examples in the trainer of its kind,
        about :data:`LEARN_SLICE` at a time; what cannot be learned is dead-lettered first."""
        for examples, bad in decoded_in_slices(messages):
            if bad:
                await self.send([Record(self.settings.topic("dead-letters"), None, dumps(x)) for x in bad])
            for kind, batch in examples.items():
                await self._learn(kind, batch)
        metrics.LAST_BATCH.labels("examples").set_to_current_time()

    async def _learn(self, kind: str, batch: Sequence[tuple[TrainingExample, int]]) -> None:
        """Learn ``batch`` of examples of ``kind`` in its trainer."""
        trainer = self.trainers[kind]
        drifts = await trainer.learn(batch)
        if trainer.unsaved.count >= CHECKPOINT_EXAMPLES:  # catching up on a backlog
            await self.checkpoint(kind)
        credit_quality = trainer.credit_quality
        if credit_quality.outcomes and not self.quality_exported:  # computed when scraped
            self.quality_exported = True
            quality = metrics.MODEL_QUALITY
            quality.labels("late_payment", "roc_auc").set_function(lambda: credit_quality.roc_auc)
            quality.labels("late_payment", "log_loss").set_function(lambda: credit_quality.log_loss)
        metrics.MODEL_EXAMPLES.labels(kind).inc(len(batch))
        if drifts:
            await self._alert(trainer, drifts)

    async def _alert(self, trainer: Trainer, drifts: Sequence[Drift]) -> None:
        models = trainer.models
        label = models.label if models else "none"
        alerts = [ModelAlert(
            alert_id=decision_id_for(f"drift:{label}:{d.model}:{d.signal}:{d.examples_seen}"),
            model=d.model, signal=d.signal, mean_before=d.mean_before, mean_after=d.mean_after,
            examples_seen=d.examples_seen, model_version=label, detected_at=utc_from_timestamp(time.time()),
        ) for d in drifts]
        for alert in alerts:
            metrics.MODEL_DRIFTS.labels(alert.model, alert.signal).inc()
            log.warning("model drift: %s %s mean %.3f -> %.3f", alert.model, alert.signal,
                        alert.mean_before, alert.mean_after)
        await self.send([Record(self.settings.topic("model-alerts"), a.model.encode(), dumps(a)) for a in alerts])

    async def checkpoint(self, *kinds: str) -> int:
        """Save what the trainers of ``kinds`` (all by default) learned as new model versions
        (timer). Returns how many examples the checkpoints covered."""
        covered = 0
        for kind in kinds or EXAMPLE_KINDS:
            trainer = self.trainers[kind]
            try:
                saved = await trainer.checkpoint()
            except ModelStoreError as exc:
                metrics.MODEL_STORE_ERRORS.inc()
                log.warning("%s model checkpoint failed (%s); retrying later", kind, type(exc).__name__)
                continue
            if saved:
                log.info("saved %s model version %d (%d examples)", kind,
                         trainer.models.version if trainer.models else 0, saved)
            covered += saved
        if covered and self.on_saved is not None:
            await self.on_saved()
        return covered

    async def replay(self, kind: str, start: int, end: int) -> list[tuple[TrainingExample, int]]:
        """The valid training examples in the records at offsets ``[start, end)`` of the partition of
        ``kind``, each with its record's offset, read directly from the broker (the trainer's
        consumer has moved past them)."""
        topic = self.settings.topic("model-examples")
        consumer = reader(self.settings.kafka_bootstrap or "")
        partition = TopicPartition(topic, EXAMPLE_PARTITIONS[kind])
        examples: list[tuple[TrainingExample, int]] = []
        await consumer.start()
        try:
            consumer.assign([partition])
            consumer.seek(partition, start)
            position = start
            while position < end:
                records = (await consumer.getmany(partition, timeout_ms=2000)).get(partition, [])
                if not records:
                    break  # nothing more to read (e.g. the end was compacted away)
                for record in records:
                    position = record.offset + 1
                    if record.offset < end:
                        valid, _ = read_example_record(record.value or b"", partition.partition)
                        examples += [(example, record.offset) for example in valid]
        finally:
            await consumer.stop()
        return examples


def decoded_in_slices(messages: Sequence[Message]) -> Iterator[tuple[dict[str, list[tuple[TrainingExample, int]]],
                                                                     list[DeadLetter]]]:
    """The examples of ``model-examples`` records by kind, each with its record's offset, and
    what cannot be learned (see :func:`read_example_record`) as dead letters, about
    :data:`LEARN_SLICE` examples at a time (whole records)."""
    examples: dict[str, list[tuple[TrainingExample, int]]] = {}
    bad: list[DeadLetter] = []
    pending = 0
    for message in messages:
        offset = message.offset
        valid, rejected = read_example_record(message.value or b"", message.partition)
        for example in valid:
            examples.setdefault(example.kind, []).append((example, offset))
        bad += [DeadLetter(code="invalid_event", reason=reason[:500], source_topic="model-examples",
                           partition=message.partition, offset=offset, key_b64=None,
                           raw_b64=base64.b64encode(raw).decode(), received_at=utc_from_timestamp(time.time()))
                for raw, reason in rejected]
        pending += len(valid)
        if pending >= LEARN_SLICE:
            yield examples, bad
            examples, bad, pending = {}, [], 0
    if examples or bad:
        yield examples, bad
