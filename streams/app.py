"""The Faust app: input topics, the customer-state table, the risk agent and the web pages.

One agent consumes ``customers``, ``orders`` and ``ledger`` together (co-partitioned by
customer id), in micro-batches: per batch it runs :class:`~streams.pipeline.Pipeline`, writes
each changed customer once, publishes decisions, holds and dead letters, and mirrors
snapshots to Redis in one round trip. Offsets are committed after the batch (at-least-once);
state changes are idempotent per event, so a redelivered batch changes nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
from faust.types import EventT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitoring import metrics
from rules import BUILTIN_RULESET_VERSION, RulePolicy, builtin_rules
from streams.contracts import dumps
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
    )
    return PipelineConfig(
        rules=builtin_rules(policy),
        rulebook_version=BUILTIN_RULESET_VERSION,
        converter=Converter(settings.fx_rates),
        base_currency=settings.base_currency,
        max_event_bytes=settings.max_event_bytes,
        retention_days=settings.retention_days,
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

    async def handle(self, events: Sequence[EventT]) -> BatchResult:
        """Process one batch of consumed events and publish what it produced."""
        started = time.perf_counter()
        logical = {self.settings.topic(name): name for name in INPUT_TOPICS}
        messages = [
            RawMessage(
                topic=logical[e.message.topic], partition=e.message.partition, offset=e.message.offset,
                key=e.message.key, value=e.message.value, timestamp=e.message.timestamp,
            )
            for e in events
        ]
        result = self.pipeline.process(messages, self.states.get)
        for customer_id, (partition, state) in result.changed.items():
            self.states.put(partition, customer_id, state)
            self.watermark = max(self.watermark, state.last_event_time)
        await self._publish(result)
        if self.mirror is not None:
            await self.mirror.write(self._mirror_update(result))
        self._count(result)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return result

    async def _publish(self, result: BatchResult) -> None:
        topics = self.outputs
        for decision in result.decisions:
            await topics["decisions"].send(key=decision.customer_id.encode(), value=dumps(decision))
        for hold in result.holds:
            await topics["order-holds"].send(key=hold.customer_id.encode(), value=dumps(hold))
        for letter in result.dead_letters:
            await topics["dead-letters"].send(key=letter.key, value=dumps(letter))

    def _mirror_update(self, result: BatchResult) -> MirrorUpdate:
        base = self.settings.base_currency
        return MirrorUpdate(
            snapshots={cid: risk_snapshot(state, state.last_event_time, base)
                       for cid, (_, state) in result.changed.items()},
            holds_opened={hold.order_id: hold for hold in result.holds if hold.outcome.value == "hold"},
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

    async def refresh_overdue(self) -> int:
        """Re-mirror customers with open receivables as of the latest event time seen, so days
        past due move with time even when a customer sends no events. Returns how many."""
        if self.mirror is None or not self.watermark:
            return 0
        base = self.settings.base_currency
        snapshots = {cid: risk_snapshot(state, self.watermark, base)
                     for cid, state in self.states.items() if state.receivables() > 0}
        await self.mirror.write(MirrorUpdate(snapshots=snapshots))
        return len(snapshots)


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
    inputs = app.topic(*(settings.topic(n) for n in INPUT_TOPICS), key_type=bytes, value_type=bytes,
                       key_serializer="raw", value_serializer="raw")
    outputs = {
        name: app.topic(settings.topic(name), key_serializer="raw", value_serializer="raw",
                        partitions=settings.partitions)
        for name in ("decisions", "order-holds", "dead-letters")
    }
    table = app.Table("customer-state", partitions=settings.partitions,
                      schema=faust.Schema(key_type=str, key_serializer="json", value_serializer=CODEC_NAME))
    mirror = RedisMirror(settings.redis_url) if settings.redis_url else None
    sg = SalesguardApp(app=app, settings=settings, pipeline=Pipeline(pipeline_config(settings)),
                       states=CustomerStates(table), outputs=outputs, mirror=mirror)

    @app.agent(inputs, name="risk")
    async def risk(stream: faust.StreamT[Any]) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_window_s):
            await sg.handle(events)

    @app.timer(settings.overdue_refresh_s, on_leader=False)
    async def overdue_refresh() -> None:
        await sg.refresh_overdue()

    @app.page("/metrics")
    async def prometheus_metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    return sg
