"""The one place models learn: a trainer per partition of the ``model-examples`` topic, one
per kind of example (orders train the anomaly detector, invoice outcomes the late-payment model;
see :data:`streams.contracts.learning.EXAMPLE_PARTITIONS`), so two processes can train.

Scoring never learns; workers score with the newest checkpoints (see
:mod:`streams.model_store` and :meth:`RiskModels.combine`). Whichever process owns a kind's
partition (a worker, or the trainer process: see :mod:`streams.training`) trains that kind: it restores
the newest checkpoint, learns each example once (ids remembered in the checkpoint), and every
``model_publish_s`` (and every ``CHECKPOINT_EXAMPLES`` while catching up, see :mod:`streams.training`)
saves a new version with the offset of the record of the last example it covers (a record holds
a batch's examples of a kind).
Examples are acknowledged as soon as they are handed to the trainer (a rebalance never waits
for a checkpoint); a trainer that starts after a crash first replays the examples from the
checkpoint's record to where its consumer resumes, so nothing learned is lost, and ids
already in the checkpoint are skipped; a trainer that gets the partition back likewise replays
the examples another trainer took in between and did not save (it crashed). If another trainer
saved first (during a rebalance), it takes that version and relearns its unsaved examples on top,
reading them back from the partition (they are not kept in memory).

>>> import asyncio
>>> from streams.contracts import TrainingExample
>>> from streams.model_store import MemoryModelStore
>>> example = TrainingExample(example_id="order:e1", kind="order", customer_id="C1",
...                           features={"amount_ratio": 1.0}, event_time="2026-01-01T00:00:00Z")
>>> async def run():
...     trainer = Trainer(MemoryModelStore(), RiskModels)
...     await trainer.learn([(example, 0), (example, 1)])   # a duplicate
...     return await trainer.checkpoint(), trainer.models.order_examples, trainer.models.version
>>> asyncio.run(run())
(2, 1, 1)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np

from detectors.drift import Drift
from detectors.risk_models import ModelSnapshotError, RiskModels
from streams.contracts import TrainingExample
from streams.model_store import Checkpoint, ModelStore, ModelStoreError

log = logging.getLogger(__name__)
#: Examples learned between two chances for the event loop to run other work (the stream).
LEARN_CHUNK = 100


class RecentIds:
    """The last ``capacity`` example ids seen (up to twice ``chunk`` more), as 64-bit hashes
    (compact to checkpoint, and in memory: the newest ``chunk`` in a set, the older ones in
    sorted NumPy arrays, ~16 bytes each instead of ~80 in a set of Python integers).

    >>> ids = RecentIds(capacity=2, chunk=1)
    >>> ids.add("a"), ids.add("a"), ids.add("b"), ids.add("c"), ids.add("a")
    (True, False, True, True, True)
    >>> RecentIds.from_bytes(ids.to_bytes(), capacity=2, chunk=1).add("c")
    False
    """

    def __init__(self, capacity: int = 200_000, chunk: int = 20_000) -> None:
        self.capacity = capacity
        self.chunk = chunk
        self._newest: dict[int, None] = {}  # insertion-ordered
        self._chunks: deque[np.ndarray] = deque()  # older hashes, oldest chunk first
        self._older = np.empty(0, dtype=np.uint64)  # the same, sorted

    @staticmethod
    def _hash(example_id: str) -> int:
        return int.from_bytes(hashlib.blake2b(example_id.encode(), digest_size=8).digest(), "little")

    def add(self, example_id: str) -> bool:
        """Remember ``example_id``; False when it was already remembered."""
        return self.add_many([example_id])[0]

    def add_many(self, example_ids: Sequence[str]) -> list[bool]:
        """Remember each of ``example_ids`` in turn, as :meth:`add` one by one would: False
        for each one already remembered (or repeated). The older hashes are searched once per
        call, not once per id (a trainer catching up spent a fifth of its time in that search).

        >>> RecentIds(capacity=4, chunk=2).add_many(["a", "b", "a", "c", "b"])
        [True, True, False, True, False]
        """
        keys = [self._hash(example_id) for example_id in example_ids]
        added: list[bool] = []
        while len(added) < len(keys):
            # no more keys than room in the newest chunk: no seal until the segment's end
            segment = keys[len(added):len(added) + self.chunk - len(self._newest)]
            for key, known in zip(segment, self._in_older(segment), strict=True):
                new = not known and key not in self._newest
                if new:
                    self._newest[key] = None
                added.append(new)
            if len(self._newest) >= self.chunk:
                self._seal()
        return added

    def _in_older(self, keys: list[int]) -> list[bool]:
        """Whether each key is among the older (sealed) hashes."""
        older = self._older
        if not len(older):
            return [False] * len(keys)
        probes = np.fromiter(keys, dtype=np.uint64, count=len(keys))
        at = np.minimum(older.searchsorted(probes), len(older) - 1)
        return cast(list[bool], (older[at] == probes).tolist())

    def _seal(self) -> None:
        """Move the newest hashes to the sorted arrays, forgetting the oldest chunks beyond capacity."""
        self._chunks.append(np.sort(np.fromiter(self._newest, dtype=np.uint64, count=len(self._newest))))
        self._newest = {}
        while sum(map(len, self._chunks)) - len(self._chunks[0]) >= self.capacity:
            self._chunks.popleft()
        # sorted chunks: a stable sort merges them (8 ms for 220,000 instead of 27)
        self._older = np.sort(np.concatenate(self._chunks), kind="stable")

    def to_bytes(self) -> bytes:
        """8 bytes each, oldest chunk first."""
        newest = np.fromiter(self._newest, dtype=np.uint64, count=len(self._newest))
        return np.concatenate([*self._chunks, newest]).astype("<u8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes, capacity: int = 200_000, chunk: int = 20_000) -> RecentIds:
        """Inverse of :meth:`to_bytes`."""
        ids = cls(capacity, chunk)
        for key in np.frombuffer(data, dtype="<u8").tolist():
            ids._newest[key] = None
            if len(ids._newest) >= chunk:
                ids._seal()
        return ids


@dataclass
class Unsaved:
    """Examples a trainer learned since its last saved version: how many, and the offsets of the
    first and the last record holding them. Not the examples themselves (~2 KB each as objects; a
    trainer catching up holds up to :data:`streams.training.CHECKPOINT_EXAMPLES`): to relearn them on
    top of another trainer's version, they are read back from the partition.

    >>> unsaved = Unsaved()
    >>> unsaved.add([("x", 7), ("y", 7), ("z", 8)])
    >>> unsaved, bool(Unsaved())
    (Unsaved(count=3, first=7, last=8), False)
    """

    count: int = 0
    first: int = -1
    last: int = -1

    def add(self, examples: Sequence[tuple[object, int]]) -> None:
        """Count ``examples`` (each with its record's offset) in."""
        if examples:
            offsets = [offset for _, offset in examples]
            self.first = min(offsets) if not self.count else min(self.first, *offsets)
            self.last = max(self.last, *offsets)
            self.count += len(examples)

    def __bool__(self) -> bool:
        return self.count > 0


#: Examples with their offset on the ``model-examples`` partition.
Batch = Sequence[tuple[TrainingExample, int]]
#: Reads the examples at offsets ``[start, end)`` of the trainer's ``model-examples`` partition.
Replay = Callable[[int, int], Awaitable[Batch]]


class Trainer:
    """Learns training examples into :class:`RiskModels` and checkpoints them.

    ``make_models`` builds untrained models when the store has none; ``replay`` reads examples
    the consumer will not deliver again (those after the checkpoint that were already acked, or
    that another trainer took meanwhile); ``kind`` names the examples it learns, in its logs.
    """

    def __init__(self, store: ModelStore, make_models: Callable[[], RiskModels], replay: Replay | None = None,
                 kind: str = "all") -> None:
        self.kind = kind
        self.store = store
        self.make_models = make_models
        self.replay = replay
        self.models: RiskModels | None = None
        self.learned = RecentIds()
        self.offset = -1
        #: The offset after the last example given to this trainer (None before the first).
        self.next_offset: int | None = None
        #: The examples learned since the last version saved (read back to relearn them).
        self.unsaved = Unsaved()
        #: Held while learning or saving: a timer's checkpoint must not run in the middle of a
        #: batch's restore and read-back (each awaits the store or the broker).
        self._busy = asyncio.Lock()
        #: The late-payment model's quality on the latest outcomes, each predicted before it was
        #: learned (this trainer's, since it started; not part of the checkpoint).
        self.credit_quality = CreditQuality()

    def _restore(self, checkpoint: Checkpoint | None) -> None:
        """Learn on from ``checkpoint`` (fresh models when None)."""
        if checkpoint is None:
            self.models, self.learned, self.offset = self.make_models(), RecentIds(), -1
            return
        try:
            self.models = RiskModels.from_bytes(checkpoint.models)
            self.learned = RecentIds.from_bytes(checkpoint.learned)
        except ModelSnapshotError as exc:  # damaged, or from an older format: start over on top of it
            log.error("%s model version %d cannot be loaded (%s); training new models from here",
                      self.kind, checkpoint.version, exc)
            self.models, self.learned = self.make_models(), RecentIds()
            self.models.version = checkpoint.version
        self.offset = checkpoint.offset
        log.info("%s trainer restored model version %d (examples up to offset %d)", self.kind, self.models.version,
                 self.offset)

    async def learn(self, batch: Batch) -> list[Drift]:
        """Learn each example not learned yet; returns the drifts detected. With the store out
        of reach, learning goes on (from fresh models if none were restored yet): the next
        checkpoint finds out whether a newer version exists and relearns on top of it."""
        async with self._busy:
            return await self._learn_on_newest(batch)

    async def _learn_on_newest(self, batch: Batch) -> list[Drift]:
        try:
            # examples after the last one given to this trainer and before this batch were taken
            # (and acked) by another trainer; if it saved no newer version, they are replayed
            replay_from, missed_what = self.next_offset, "another trainer took without saving them"
            replay_to = batch[0][1] if batch else None
            # first batch, or another trainer saved a newer version: take it
            restored = self.models is None or await self.store.version() > self.models.version
            newest = await self.store.load() if restored else None
            if restored:
                # from the checkpoint's last record: it may cover only part of that record's
                # examples (a caller may cut a record across batches); the ids remembered skip those
                replay_from = max(newest.offset if newest else -1, 0)
                missed_what = "from the checkpoint's last record on"
                if self.unsaved:  # learned here, not in that version: relearned on top of it
                    replay_from = min(replay_from, self.unsaved.first)
                    replay_to = max(replay_to or 0, self.next_offset or 0)
                    missed_what += ", with this trainer's unsaved ones"
            missed: Batch = []
            if self.replay is not None and replay_from is not None and replay_to is not None \
                    and replay_to > replay_from:
                missed = await self.replay(replay_from, replay_to)  # before anything changes: it may fail
                log.info("%s trainer replays %d examples %s", self.kind, len(missed), missed_what)
            if restored:
                if self.unsaved and self.replay is None:
                    log.warning("%s trainer cannot read back its %d unsaved examples (no replay): not relearned",
                                self.kind, self.unsaved.count)
                self._restore(newest)
                self.unsaved = Unsaved()
            batch = [*missed, *batch]
        except ModelStoreError as exc:
            log.warning("%s model store unavailable (%s); learning on without it", self.kind, exc)
            if self.models is None:
                self.models, self.learned, self.offset = self.make_models(), RecentIds(), -1
        return await self._learn(batch)

    async def _learn(self, batch: Batch) -> list[Drift]:
        """Learn ``batch``, letting the event loop run other work (the stream) every
        :data:`LEARN_CHUNK` examples; a checkpoint waits for the whole batch."""
        models = self.models
        assert models is not None
        drifts = []
        for start in range(0, len(batch), LEARN_CHUNK):
            if start:
                await asyncio.sleep(0)
            chunk = batch[start:start + LEARN_CHUNK]
            self.unsaved.add(chunk)
            for (example, _), new in zip(chunk, self.learned.add_many([e.example_id for e, _ in chunk]), strict=True):
                if not new:
                    continue
                drift, predicted = learn_example(models, example)
                if drift is not None:
                    drifts.append(drift)
                if predicted is not None:
                    self.credit_quality.update(bool(example.late), predicted)
        if batch:
            self.next_offset = max(self.next_offset or 0, 1 + max(offset for _, offset in batch))
        return drifts

    async def checkpoint(self) -> int:
        """Save a new version if anything was learned since the last one. Returns how many
        examples it covers: 0 when there was nothing to save or another trainer saved first
        (then its version is taken and ours relearned on top). Store errors propagate; nothing
        is lost, the next call tries again."""
        async with self._busy:
            return await self._checkpoint()

    async def _checkpoint(self) -> int:
        models = self.models
        if models is None or not self.unsaved:
            return 0
        covered, self.unsaved = self.unsaved, Unsaved()
        previous = models.version
        models.version = previous + 1
        offset = max(self.offset, covered.last)
        checkpoint = Checkpoint(models.version, models.to_bytes(), self.learned.to_bytes(), offset)
        try:
            saved = await self.store.save(checkpoint, previous)
        except BaseException:
            models.version = previous
            self.unsaved = covered  # nothing was learned meanwhile (the lock)
            raise
        if saved:
            self.offset = offset
            return covered.count
        models.version = previous  # older than the store's: the next batch takes the newer version
        self.unsaved = covered
        log.warning("%s model version %d was saved by another trainer; relearning %d examples on top of it",
                    self.kind, previous + 1, self.unsaved.count)
        try:
            await self._learn_on_newest([])
        except Exception as exc:  # reading them back failed: the next batch tries again (nothing changed)
            log.warning("%s trainer could not read its unsaved examples back (%r); retrying with the next batch",
                        self.kind, exc)
        return 0


class CreditQuality:
    """ROC AUC and log loss of the late-payment model over the last ``window`` invoice outcomes.

    The AUC is exact (the rank statistic, ties counted half), computed when read; updating is
    O(1). (river's rolling ``ROCAUC`` kept 100 confusion matrices up to date per outcome: two
    thirds of the trainer's time.)

    >>> quality = CreditQuality()
    >>> for late, p in [(True, 0.9), (False, 0.2), (True, 0.7), (False, 0.4)]:
    ...     quality.update(late, p)
    >>> quality.outcomes, quality.roc_auc, round(quality.log_loss, 3)
    (4, 1.0, 0.299)
    """

    #: Probabilities are clipped to [EPS, 1 - EPS] for the log loss, as river and scikit-learn do.
    EPS = 1e-15

    def __init__(self, window: int = 1000) -> None:
        self._window: deque[tuple[bool, float, float]] = deque(maxlen=window)  # (late, p, loss)
        self._loss_sum = 0.0
        self.outcomes = 0

    def update(self, late: bool, predicted: float) -> None:
        p = min(max(predicted, self.EPS), 1.0 - self.EPS)
        loss = -math.log(p if late else 1.0 - p)
        if len(self._window) == self._window.maxlen:
            self._loss_sum -= self._window[0][2]
        self._window.append((late, predicted, loss))
        self._loss_sum += loss
        self.outcomes += 1

    @property
    def roc_auc(self) -> float:
        """Exact ROC AUC over the window (NaN while it holds only one class)."""
        late = np.fromiter((row[0] for row in self._window), dtype=bool, count=len(self._window))
        scores = np.fromiter((row[1] for row in self._window), dtype=float, count=len(self._window))
        positives = int(late.sum())
        negatives = len(late) - positives
        if not positives or not negatives:
            return float("nan")
        _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
        average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based ranks, ties averaged
        rank_sum = float(average_rank[inverse][late].sum())
        return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)

    @property
    def log_loss(self) -> float:
        """Mean log loss over the window."""
        return self._loss_sum / len(self._window) if self._window else float("nan")


def learn_example(models: RiskModels, example: TrainingExample) -> tuple[Drift | None, float | None]:
    """Learn one training example (an order, or an invoice's outcome); returns a drift, if any,
    and for an invoice outcome the late-payment probability the model gave before learning it."""
    if example.kind == "order":
        return models.learn_order(example.order_features, example.salesperson_id), None
    predicted, drift = models.learn_credit(example.features, bool(example.late))
    return drift, predicted
