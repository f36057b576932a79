"""``salesguard demo``: the embedded stack, a worker (and a trainer with
``SALESGUARD_TRAINING=separate``), generated traffic, live progress.

The demo watches the output topics like any downstream consumer would: it counts distinct
decision ids (so a redelivered decision is not counted twice), holds and dead letters; and it
shows the worker's decision latency over the last few seconds, read from its ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson
from rich.console import Console
from rich.live import Live
from rich.table import Table

from monitoring.metrics import DECISION_LATENCY
from monitoring.scrape import Buckets, histogram_buckets, quantile_bound, read_page
from streams.embedded import ChildService, EmbeddedStack, free_port
from streams.event_file import write_message
from streams.generator import GeneratedMessage, SalesSimulator
from streams.kafka_clients import producer, reader
from streams.settings import Settings
from streams.topics import ensure_topics

#: Settings for the embedded broker: short consumer-group timings (the first join waits for the
#: rebalance timeout) and end markers on the changelog (see ``CustomerStates.write``).
EMBEDDED_BROKER_SETTINGS: dict[str, Any] = {
    "rebalance_timeout_s": 5.0, "session_timeout_s": 4.0, "heartbeat_interval_s": 1.0,
    "changelog_end_markers": True,
}

#: Shown when a live demo starts the embedded broker (see the README's "The embedded stack").
EMBEDDED_BROKER_NOTE = ("The embedded broker slows down as it runs: after a few minutes of live traffic decisions "
                        "take a second or more (README, The embedded stack). For longer runs set "
                        "SALESGUARD_KAFKA_BOOTSTRAP to a Kafka broker.")

#: Seconds between two reads of the worker's decision latency (the live table's window).
LATENCY_WINDOW_S = 5.0
#: The worker's decision latency histogram.
LATENCY_HISTOGRAM = next(iter(DECISION_LATENCY.describe())).name


#: Settings for simulated traffic (unless set in the environment): its business clock runs
#: months ahead in minutes, so event times later than the wall clock are expected.
SIMULATION_SETTINGS: dict[str, Any] = {"future_tolerance_h": 0.0}
#: Demo defaults (unless set in the environment): publish model versions often, so a short
#: demo shows scores.
DEMO_SETTINGS: dict[str, Any] = {"model_publish_s": 5.0, "model_refresh_s": 2.0, **SIMULATION_SETTINGS}


class DemoTimeout(RuntimeError):
    """The worker did not decide every order in time."""


@dataclass
class Tally:
    """What the demo produced and what came out of the pipeline."""

    produced: Counter[str] = field(default_factory=Counter)
    decision_ids: set[str] = field(default_factory=set)
    outcomes: Counter[str] = field(default_factory=Counter)
    hold_ids: set[str] = field(default_factory=set)
    dead_letters: int = 0
    scored: int = 0
    model_version: str | None = None
    started: float = field(default_factory=time.monotonic)
    #: Seconds from ``started`` to the first decision read.
    first_decision_s: float | None = None
    #: The worker's decision latency between its last two reads (see :func:`watch_latency`).
    latency: str | None = None

    @property
    def orders(self) -> int:
        """Valid order requests produced (placed + amended): each needs one decision."""
        return self.produced["order.placed"] + self.produced["order.amended"]

    @property
    def bad(self) -> int:
        """Broken messages produced: each must be dead-lettered."""
        return sum(count for kind, count in self.produced.items() if kind.startswith("bad:"))

    def count_output(self, topic: str, value: bytes) -> None:
        """Count one message from an output topic."""
        record = orjson.loads(value)
        if topic.endswith("decisions") and record["decision_id"] not in self.decision_ids:
            if self.first_decision_s is None:
                self.first_decision_s = round(time.monotonic() - self.started, 2)
            self.decision_ids.add(record["decision_id"])
            self.outcomes[record["outcome"]] += 1
            self.scored += bool(record.get("scores"))
            self.model_version = record.get("model_version") or self.model_version
        elif topic.endswith("order-holds"):
            self.hold_ids.add(record["hold_id"])
        elif topic.endswith("dead-letters"):
            self.dead_letters += 1

    def complete(self) -> bool:
        """Every order decided and every broken message dead-lettered."""
        return len(self.decision_ids) >= self.orders and self.dead_letters >= self.bad

    def summary(self) -> dict[str, Any]:
        """The one-line JSON summary of ``demo --json``."""
        elapsed = time.monotonic() - self.started
        return {
            "events": sum(self.produced.values()),
            "orders": self.orders,
            "decisions": len(self.decision_ids),
            **{outcome: self.outcomes[outcome] for outcome in ("approve", "review", "hold", "reject")},
            "holds_published": len(self.hold_ids),
            "dead_letters": self.dead_letters,
            "bad_messages_sent": self.bad,
            "scored": self.scored,
            "model_version": self.model_version,
            "first_decision_s": self.first_decision_s,
            "elapsed_s": round(elapsed, 2),
        }

    def table(self) -> Table:
        """Live progress for people."""
        elapsed = max(time.monotonic() - self.started, 1e-6)
        grid = Table(title="salesguard demo (Ctrl-C to stop)", show_header=False, min_width=48)
        produced = sum(self.produced.values())
        grid.add_row("events produced", f"{produced:,}  ({produced / elapsed:,.0f}/s)")
        grid.add_row("orders", f"{self.orders:,}")
        grid.add_row("decisions", f"{len(self.decision_ids):,}  ({len(self.decision_ids) / elapsed:,.0f}/s)")
        if self.first_decision_s is not None:
            grid.add_row("first decision", f"{self.first_decision_s:.1f} s after start")
        for outcome, style in (("approve", "green"), ("review", "yellow"), ("hold", "red"), ("reject", "bold red")):
            grid.add_row(f"  [{style}]{outcome}[/]", f"{self.outcomes[outcome]:,}")
        grid.add_row("holds sent to ERP", f"{len(self.hold_ids):,}")
        grid.add_row("dead letters", f"{self.dead_letters:,}")
        grid.add_row("scored by the models", f"{self.scored:,}  ({self.model_version or 'no version yet'})")
        if self.latency is not None:
            grid.add_row(f"decision latency, last {LATENCY_WINDOW_S:.0f} s", self.latency)
        return grid


def latency_text(now: Buckets, before: Buckets) -> str:
    """The p50 and p99 of the latencies observed between two reads of a histogram, as the
    bucket edges they are under.

    >>> before = {0.025: 0.0, 0.05: 0.0, 10.0: 0.0, float("inf"): 0.0}
    >>> latency_text({0.025: 90.0, 0.05: 100.0, 10.0: 100.0, float("inf"): 100.0}, before)
    'p50 ≤ 25 ms · p99 ≤ 50 ms'
    >>> latency_text({0.025: 0.0, 0.05: 0.0, 10.0: 60.0, float("inf"): 100.0}, before)
    'p50 ≤ 10 s · p99 > 10 s'
    >>> latency_text(before, before)
    'no decisions'
    """
    p50, p99 = quantile_bound(now, before, 0.5), quantile_bound(now, before, 0.99)
    if p50 is None or p99 is None:
        return "no decisions"
    last_edge = max((edge for edge in now if edge != float("inf")), default=0.0)

    def bound(edge: float) -> str:
        if edge == float("inf"):
            return f"> {last_edge:g} s"
        return f"≤ {edge * 1000:g} ms" if edge < 1 else f"≤ {edge:g} s"

    return f"p50 {bound(p50)} · p99 {bound(p99)}"


async def read_latency(http: aiohttp.ClientSession, port: int) -> Buckets:
    """The worker's decision latency histogram (cumulative counts by bucket edge) from its
    ``/metrics`` on ``port``."""
    return histogram_buckets(await read_page(http, port), LATENCY_HISTOGRAM)


async def watch_latency(port: int, tally: Tally) -> None:
    """Keep ``tally.latency`` at the latency between the worker's last two histogram reads, one
    every :data:`LATENCY_WINDOW_S`, forever (cancel to stop); a read that fails is skipped."""
    previous: Buckets | None = None
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=LATENCY_WINDOW_S)) as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                now = await read_latency(http, port)
                if previous is not None:
                    tally.latency = latency_text(now, previous)
                previous = now
            await asyncio.sleep(LATENCY_WINDOW_S)


@dataclass(frozen=True)
class Servers:
    """The settings pointing at the broker and Redis in use, and the broker's process id when
    the broker is embedded here (for measuring it)."""

    settings: Settings
    broker_pid: int | None = None


@contextlib.contextmanager
def services(settings: Settings, run_dir: Path) -> Iterator[Servers]:
    """Yield the configured servers, or an embedded stack started here for what is not configured."""
    if settings.kafka_bootstrap and settings.redis_url:
        yield Servers(settings)
        return
    with EmbeddedStack(run_dir) as stack:
        update: dict[str, Any] = {"kafka_bootstrap": settings.kafka_bootstrap, "redis_url": settings.redis_url}
        broker_pid = None
        if not settings.kafka_bootstrap:
            update.update(kafka_bootstrap=stack.kafka_bootstrap, **EMBEDDED_BROKER_SETTINGS)
            broker_pid = stack.broker.pid
        if not settings.redis_url:
            update["redis_url"] = stack.redis_url
        yield Servers(settings.model_copy(update=update), broker_pid)


def worker_service(settings: Settings, run_dir: Path, name: str = "worker", command: str = "worker") -> ChildService:
    """A ``salesguard <command>`` worker child process (not started) on ``settings``, with its
    own free web port, data directory ``run_dir/<name>-data`` and log ``run_dir/<name>.log``."""
    port = free_port()
    env = {**os.environ, **settings.as_environment(), "SALESGUARD_WEB_PORT": str(port),
           "SALESGUARD_DATA_DIR": str(run_dir / f"{name}-data")}
    return ChildService(name, [sys.executable, "-m", "streams.cli", command], port, run_dir / f"{name}.log", env=env)


@contextlib.asynccontextmanager
async def worker_process(settings: Settings, run_dir: Path) -> AsyncIterator[ChildService]:
    """A running ``salesguard worker`` child process, and with ``SALESGUARD_TRAINING=separate`` a
    ``salesguard trainer`` beside it; stopped on exit."""
    worker = worker_service(settings, run_dir)
    children = [worker]
    if settings.training == "separate":
        children.append(worker_service(settings, run_dir, "trainer", "trainer"))
    for child in children:
        child.spawn()
    try:
        await asyncio.gather(*(asyncio.to_thread(child.wait_ready, 60.0) for child in children))
        yield worker
    finally:
        await asyncio.gather(*(asyncio.to_thread(child.stop, 15.0) for child in children))


#: The demo keeps at most this many orders undecided, so the worker sees traffic the way a
#: live system does rather than as one backlog (in a backlog, Kafka's per-partition order lets
#: one topic run ahead of another, e.g. orders ahead of the payments that preceded them).
MAX_UNDECIDED_ORDERS = 200


def recorded(messages: Iterable[GeneratedMessage], out: IO[str]) -> Iterator[GeneratedMessage]:
    """``messages``, each written to ``out`` as it is taken (see :mod:`streams.event_file`)."""
    for message in messages:
        write_message(out, message.topic, message.key, message.value)
        yield message


async def produce(settings: Settings, messages: Iterator[GeneratedMessage], tally: Tally, rate: float | None,
                  pace_to_decisions: bool = True) -> None:
    """Send generated messages, at ``rate`` events/s when given, and (``pace_to_decisions``)
    with at most :data:`MAX_UNDECIDED_ORDERS` orders undecided."""
    kafka = producer(settings.kafka_bootstrap or "")
    await kafka.start()
    try:
        started = time.monotonic()
        for sent, message in enumerate(messages, start=1):
            while (pace_to_decisions and message.needs_decision
                   and tally.orders - len(tally.decision_ids) >= MAX_UNDECIDED_ORDERS):
                await kafka.flush()
                await asyncio.sleep(0.01)
            await kafka.send(settings.topic(message.topic), key=message.key, value=message.value)
            tally.produced[message.kind] += 1
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    await kafka.flush()
                    await asyncio.sleep(ahead)
        await kafka.flush()
    finally:
        await kafka.stop()


async def watch(settings: Settings, tally: Tally) -> None:
    """Count what arrives on the output topics, forever (cancel to stop)."""
    topics = [settings.topic(name) for name in ("decisions", "order-holds", "dead-letters")]
    consumer = reader(settings.kafka_bootstrap or "", *topics)
    await consumer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for partition, records in batches.items():
                for record in records:
                    tally.count_output(partition.topic, record.value)
    finally:
        await consumer.stop()


async def run_demo(settings: Settings, run_dir: Path, events: int | None, rate: float | None, seed: int,
                   as_json: bool, timeout_s: float, console: Console, record: IO[str] | None = None,
                   started: float | None = None) -> dict[str, Any]:
    """Run the demo until ``events`` are decided (or forever when None); return the summary.
    ``record``: also write every produced message there (an event file for backtests);
    ``started``: when the demo started (``time.monotonic()``; default now), for ``first_decision_s``."""
    await ensure_topics(settings)
    tally = Tally(started=started if started is not None else time.monotonic())
    run_id = f"r{int(time.time())}"
    simulator = SalesSimulator(seed=seed, total_events=events, run_id=run_id)
    messages = iter(simulator) if record is None else recorded(simulator, record)
    async with worker_process(settings, run_dir) as worker:
        if not as_json:
            console.print(f"risk desk http://127.0.0.1:{worker.port}/desk/ "
                          f"(users: {', '.join(f'{u.user} ({u.role})' for u in settings.desk_tokens) or 'none'})")
        watcher = asyncio.create_task(watch(settings, tally))
        latency = asyncio.create_task(watch_latency(worker.port, tally))
        producer_task = asyncio.create_task(produce(settings, messages, tally, rate))
        live = None if as_json else Live(tally.table(), console=console, refresh_per_second=4)
        try:
            if live is not None:
                live.start()
            deadline = time.monotonic() + timeout_s
            while not (producer_task.done() and tally.complete()):
                if producer_task.done() and producer_task.exception():
                    raise producer_task.exception()  # type: ignore[misc]
                if events is not None and time.monotonic() > deadline:
                    raise DemoTimeout(
                        f"after {timeout_s:.0f}s: {len(tally.decision_ids)} of {tally.orders} orders decided, "
                        f"{tally.dead_letters} of {tally.bad} bad messages dead-lettered; see logs in {run_dir}")
                if live is not None:
                    live.update(tally.table())
                await asyncio.sleep(0.25)
            if live is not None:
                live.update(tally.table())
        finally:
            if live is not None:
                live.stop()
            for task in (producer_task, watcher, latency):
                task.cancel()
            await asyncio.gather(producer_task, watcher, latency, return_exceptions=True)
    return tally.summary()
