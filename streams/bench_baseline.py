"""The benchmark's baseline: what Faust itself costs per event.

One plain agent per input topic iterates its stream one event at a time, deserializes each
value (JSON) and acknowledges it — no state, no models, no rules, no output. ``salesguard
bench`` runs it as a worker (``salesguard baseline-worker``) on the same topics, broker and
group settings as the pipeline, and reads ``salesguard_bench_events_total`` from its
``/metrics`` page.
"""

from __future__ import annotations

import time
from typing import Any

import faust
import orjson
from prometheus_client import Counter

from monitoring.metrics import LAST_BATCH
from streams.app import faust_app
from streams.settings import Settings
from streams.topics import INPUT_TOPICS

EVENTS = Counter("salesguard_bench_events_total", "Events the baseline agents deserialized and acknowledged.",
                 ["topic"])
#: Values that were not JSON (the generator's broken messages): deserialized as far as possible.
UNREADABLE = Counter("salesguard_bench_unreadable_total", "Values the baseline agents could not deserialize.")


def build_baseline_app(settings: Settings) -> faust.App:
    """A Faust app with one per-event agent per input topic of ``settings``. Like a pipeline
    worker, it reports when it last made progress (``salesguard_last_batch_timestamp_seconds``,
    ``stream="input"``): here the time of the last event, kept per event as a float and read
    when scraped (cheaper than setting the gauge per event)."""
    app = faust_app(settings)
    last_event_at = [0.0]
    LAST_BATCH.labels("input").set_function(lambda: last_event_at[0])
    for name in INPUT_TOPICS:
        topic = app.topic(settings.topic(name), key_type=bytes, value_type=bytes, key_serializer="raw",
                          value_serializer="raw", partitions=settings.partitions)
        app.agent(topic, name=f"baseline-{name}")(_plain_agent(name, last_event_at))
    return app


def _plain_agent(topic: str, last_event_at: list[float]) -> Any:
    counted = EVENTS.labels(topic)

    async def plain(stream: Any) -> None:
        async for value in stream:  # acknowledged when the next one is taken
            try:
                orjson.loads(value)
            except orjson.JSONDecodeError:
                UNREADABLE.inc()
            counted.inc()
            last_event_at[0] = time.time()

    plain.__name__ = plain.__qualname__ = f"baseline_{topic.replace('-', '_')}"
    return plain
