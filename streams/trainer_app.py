"""``salesguard trainer``: the models learn in a process of their own (``SALESGUARD_TRAINING=separate``).

The trainer app consumes only the ``model-examples`` topic, in a consumer group of its own
(``<app_id>-trainer``), and saves model versions to the model store, from which the workers
score. Two trainer processes share the work (a partition, i.e. a kind of example, each) and
take over from each other. It serves ``/metrics`` and ``/health`` (stalled: examples waiting and
none taken for ``stall_after_s``) like a worker.

Learning in the workers costs them a share of their time between batches (and a worker that
owns both partitions trains both kinds); here it runs beside them, on another core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import faust
from faust.types import Message

from monitoring import metrics
from streams.app import faust_app, serve_health, train_in
from streams.batch_consumer import BatchConsumer, use_batch_consumer
from streams.liveness import Health, Liveness
from streams.outbox import Outbox, Record, faust_producer
from streams.settings import Settings
from streams.training import Training, model_stores


@dataclass
class TrainerApp:
    """The trainer's Faust app, with its trainers and liveness."""

    app: faust.App
    training: Training
    liveness: Liveness

    async def consume(self, messages: Sequence[Message]) -> None:
        """Queue fetched ``model-examples`` records for the trainers (progress for ``/health``)."""
        await self.training.enqueue(messages)
        self.liveness.progressed()

    def health(self) -> Health:
        """Whether the trainer takes the examples waiting for it; updates the liveness metrics."""
        consumer = self.app.consumer
        return self.liveness.check(consumer.input_lag() if isinstance(consumer, BatchConsumer) else None)


def build_trainer_app(settings: Settings) -> TrainerApp:
    """The trainer app of the deployment ``settings`` describe (consumer group ``<app_id>-trainer``)."""
    app = faust_app(settings.model_copy(update={"app_id": f"{settings.app_id}-trainer"}))
    app.monitor = metrics.FaustMonitor(metrics=metrics.faust_metrics())  # its lag on /metrics
    outbox = Outbox()

    async def send(records: Sequence[Record]) -> None:
        await outbox.send(faust_producer(app), records)

    trainer = TrainerApp(app, Training(settings, model_stores(settings), send), Liveness(settings.stall_after_s))
    use_batch_consumer(app, {settings.topic("model-examples"): trainer.consume}, settings.batch_size,
                       settings.batch_window_ms / 1000)
    train_in(app, trainer.training)
    serve_health(app, trainer.health)
    return trainer
