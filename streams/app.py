"""The Faust app: input topics, the customer-state table, the risk agent and the web pages.

One small agent per input topic (``customers``, ``orders``, ``ledger``); the topics and the
table are co-partitioned by customer id, so one worker owns all of a customer's events and
state. Each agent works in micro-batches: per batch it runs :class:`~streams.pipeline.Pipeline`,
delivers decisions, holds and dead letters, then writes each changed customer once (one batch
at a time per worker, see ``batch_lock``), then mirrors to Redis in one round trip. Offsets
are acked after the batch (at-least-once); state changes are idempotent per event, so a
redelivered batch changes nothing twice.

Kafka orders events within a topic-partition only: a payment may be processed before the
order it pays for was, when the ``ledger`` topic runs ahead of ``orders``. Decisions use the
state known when the order is processed, as a live system must.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from faust.types import EventT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitoring import metrics
from rules import BUILTIN_RULESET_VERSION, Outcome, RulePolicy, builtin_rules
from streams.contracts import dumps
from streams.exposure import CustomerState
from streams.mirror import MirrorUpdate, RedisMirror
from streams.money import Converter
from streams.pipeline import BatchResult, Pipeline, PipelineConfig, RawMessage
from streams.settings import Settings
from streams.snapshot import risk_snapshot
from streams.state_table import CODEC_NAME, CustomerStates
from streams.topics import INPUT_TOPICS

log = logging.getLogger(__name__)


def pipeline_config(settings: Settings) -> PipelineConfig:
    """The pipeline configuration the settings describe."""
    policy = RulePolicy(
        limit_tolerance=settings.limit_tolerance,
        reject_over_limit=settings.reject_over_limit,
        overdue_review_days=settings.overdue_review_days,
        overdue_hold_days=settings.overdue_hold_days,
        anomaly_review_score=settings.anomaly_review_score,
        late_payment_review_probability=settings.late_payment_review_probability,
    )
    return PipelineConfig(
        rules=builtin_rules(policy),
        rulebook_version=BUILTIN_RULESET_VERSION,
        converter=Converter(settings.fx_rates),
        base_currency=settings.base_currency,
        max_event_bytes=settings.max_event_bytes,
        retention_days=settings.retention_days,
        late_payment_days=settings.late_payment_days,
    )


@dataclass
class SalesguardApp:
    """The Faust app with the pieces tests and the CLI reach for."""

    app: faust.App
    settings: Settings
    pipeline: Pipeline
    states: CustomerStates
    outputs: dict[str, Any]
    mirror: RedisMirror | None
    watermark: float = 0.0
    #: One batch at a time per worker, from processing to its state write: the agents share
    #: customer states, and a batch's outputs must be delivered before any state containing its
    #: changes is written (another agent's write would otherwise persist them early, and two
    #: agents creating the same new customer would overwrite each other).
    batch_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def handle(self, topic: str, events: Sequence[EventT]) -> BatchResult:
        """Process one batch of events consumed from input topic ``topic`` (logical name) and
        publish what it produced."""
        started = time.perf_counter()
        messages = [
            RawMessage(
                topic=topic, partition=e.message.partition, offset=e.message.offset,
                key=e.message.key, value=e.message.value or b"", timestamp=e.message.timestamp,
            )
            for e in events
        ]
        async with self.batch_lock:
            result = self.pipeline.process(messages, self.states.get)
            # Outputs are delivered before the state that records them is written: after a crash,
            # an order is either not recorded (decided again: same state, same decision and id) or
            # recorded with its decision already delivered. Offsets are acked after both.
            await self._publish(result)
            await self.states.write(result.changed, end_markers=self.settings.changelog_end_markers)
        for _, state in result.changed.values():
            self.watermark = max(self.watermark, state.last_event_time)
        if self.mirror is not None:
            await self.mirror.write(self._mirror_update(result))
        self._count(result)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return result

    async def _publish(self, result: BatchResult) -> None:
        """Send decisions, holds and dead letters and wait until the broker has them."""
        topics = self.outputs
        sent = [await topics["decisions"].send(key=d.customer_id.encode(), value=dumps(d)) for d in result.decisions]
        sent += [await topics["order-holds"].send(key=h.customer_id.encode(), value=dumps(h)) for h in result.holds]
        sent += [await topics["dead-letters"].send(key=x.key, value=dumps(x)) for x in result.dead_letters]
        await asyncio.gather(*sent)

    def _mirror_update(self, result: BatchResult) -> MirrorUpdate:
        return MirrorUpdate(
            customers=set(result.changed),
            holds_opened={hold.order_id: hold for hold in result.holds if hold.outcome is Outcome.HOLD},
            holds_closed={order_id for _, order_id in result.holds_closed},
        )

    @staticmethod
    def _count(result: BatchResult) -> None:
        for topic, count in result.consumed.items():
            metrics.EVENTS_CONSUMED.labels(topic).inc(count)
        metrics.DUPLICATE_EVENTS.inc(result.duplicates)
        for letter in result.dead_letters:
            metrics.DEAD_LETTERS.labels(letter.code).inc()
        for decision in result.decisions:
            metrics.DECISIONS.labels(decision.outcome.value).inc()
            metrics.DECISION_LATENCY.observe(decision.latency_ms / 1000.0)

    def snapshot(self, customer_id: str) -> dict[str, Any]:
        """The customer's risk snapshot as of the latest event time this worker has seen, so
        days past due move on even for a customer that sends no events."""
        state = self.states.get(customer_id) or CustomerState(customer_id)
        return risk_snapshot(state, max(self.watermark, state.last_event_time), self.settings.base_currency)

    async def refresh_overdue(self) -> int:
        """Re-mirror every customer with open receivables (timer). Returns how many."""
        if self.mirror is None or not self.watermark:
            return 0
        customers = {cid for cid, state in self.states.items() if state.receivables() > 0}
        await self.mirror.write(MirrorUpdate(customers=customers))
        return len(customers)


def consumer_of(sg: SalesguardApp, topic: str) -> Callable[[Any], Awaitable[None]]:
    """The agent body for input topic ``topic``: micro-batches into :meth:`SalesguardApp.handle`."""
    settings = sg.settings

    async def consume(stream: Any) -> None:
        # Ack only after the batch is processed and published: if handle() fails, the offsets
        # are not committed and the events come back (take_events would ack them anyway).
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_window_s):
            await sg.handle(topic, events)
            for event in events:
                await stream.ack(event)

    consume.__name__ = consume.__qualname__ = f"consume_{topic}"
    return consume


def build_app(settings: Settings) -> SalesguardApp:
    """Declare the Faust app, its topics, table, agent, timer and pages from ``settings``."""
    datadir = Path(settings.data_dir) / f"{settings.app_id}-{settings.web_port}"
    datadir.mkdir(parents=True, exist_ok=True)
    brokers = [f"kafka://{server.strip()}" for server in (settings.kafka_bootstrap or "").split(",") if server.strip()]
    app = faust.App(
        settings.app_id,
        broker=brokers or "kafka://127.0.0.1:9092",
        store="memory://",
        autodiscover=False,
        datadir=str(datadir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        consumer_auto_offset_reset="earliest",
    )
    outputs = {
        name: app.topic(settings.topic(name), key_serializer="raw", value_serializer="raw",
                        partitions=settings.partitions)
        for name in ("decisions", "order-holds", "dead-letters")
    }
    # The changelog topic is declared here so that recovery decodes states with our codec
    # (Faust derives a table's serializers from value_type, which would give plain dicts).
    changelog = app.topic(f"{settings.app_id}-customer-state-changelog", key_serializer="json",
                          value_serializer=CODEC_NAME, partitions=settings.partitions, compacting=True,
                          deleting=False, acks=False, internal=True, maxsize=131_072, allow_empty=True)
    table: Any = app.Table("customer-state", partitions=settings.partitions, changelog_topic=changelog)
    sg = SalesguardApp(app=app, settings=settings, pipeline=Pipeline(pipeline_config(settings)),
                       states=CustomerStates(table, changelog), outputs=outputs, mirror=None)
    if settings.redis_url:
        sg.mirror = RedisMirror(settings.redis_url, sg.snapshot)
    for name in INPUT_TOPICS:
        source = app.topic(settings.topic(name), key_type=bytes, value_type=bytes,
                           key_serializer="raw", value_serializer="raw", partitions=settings.partitions)
        app.agent(source, name=name)(consumer_of(sg, name))

    @app.timer(settings.overdue_refresh_s, on_leader=False)
    async def overdue_refresh() -> None:
        await sg.refresh_overdue()

    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; Prometheus' type carries one.
        return web.bytes(generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return sg
