"""``salesguard bench``: the full pipeline against Faust's own per-event loop, on a real broker.

One run, on the embedded stack (or the configured Kafka and Redis), in phases:

1. **load** — ``events`` generated events are produced to the input topics (a backlog);
2. **baseline** — ``workers`` baseline workers (:mod:`streams.bench_baseline`: plain per-event
   agents that only deserialize and acknowledge) read the backlog in their own group;
3. **pipeline** — ``workers`` salesguard workers read the same backlog in another group (own
   Redis database, fresh state, a model version trained beforehand on other simulated traffic,
   so both detectors score from the first order): validation, state, both detectors, the
   rulebook, decisions, holds, state writes, Redis mirror, audit trail, trainer — in a trainer
   process beside the workers with ``SALESGUARD_TRAINING=separate`` (what ``salesguard bench``
   runs unless told otherwise, as docker-compose.yml deploys it), else in the workers;
4. **latency** — the same workers then get a steady load of ``rate`` events/s (default: half
   the pipeline's measured throughput) for ``duration`` seconds; latency runs from each order's
   produce timestamp to its decision's publish timestamp (the Kafka timestamps of both records),
   also reported per :data:`SLICE_S` seconds of the load (its p99, and the cores the embedded
   broker used meanwhile), to show whether it drifts as the load goes on; also up to the broker's
   acknowledgement of the order (the part spent before a worker can read it) and up to the
   decision (the latency each decision records: the part spent before publishing), the
   workers' CPU seconds per 1,000 events of the steady load (against the backlog's), and how
   contended the machine's cores were meanwhile (:class:`Contention`: on a small machine the
   workers, the broker, Redis and the benchmark's own producer share them);
5. **scaling** (``workers`` > 1) — one salesguard worker reads the backlog again (from topics of
   its own), before the pipeline phase; with ``repeat`` > 1, further pairs of a one-worker and a
   ``workers``-worker phase follow the latency phase, and the scaling is the median of the pairs'
   ratios (on a shared VM a single pair moves with the VM's speed from one minute to the next);
6. **ratio pairs** (one worker, ``repeat`` > 1) — further pairs of a baseline and a pipeline
   phase follow the latency phase, each pair on topics of its own, and the ratio is the median of
   the pairs' ratios, for the same reason.

Throughput is counted from the workers' ``/metrics``, from the scrape at which they had processed
:data:`START_SHARE` of the backlog (every worker under way; start-up excluded) to when they had
processed all of it — for the pipeline, also learned every training example it produced (a
trainer in a worker falls behind while the backlog lasts: how long it went on learning after the
last batch of input is reported as ``training_tail_s``; a trainer process's CPU is counted with
the workers'). That end is the last
progress the workers report (``salesguard_last_batch_timestamp_seconds``, the baseline's
too), not the scrape that saw it: scrapes are
:data:`SCRAPE_EVERY_S` apart, which would add up to that much to a run. CPU seconds come
from the same scrapes (``process_cpu_seconds_total``), peak RSS from ``VmHWM`` in
``/proc/<pid>/status`` (Linux). When the broker is embedded (its process id is given), its CPU
seconds per 1,000 events are measured over the same windows: on a small machine the broker
competes with the workers for the same cores.

On a configured Kafka the run's topics (every phase's, and its consumer groups' changelog and
assignor topics: all named with the run's id) are deleted when it ends, also when it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import numpy as np
import orjson
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from monitoring.scrape import Samples, read_page, sample_values
from streams.contracts.learning import EXAMPLE_KINDS
from streams.demo import worker_service
from streams.embedded import ChildService
from streams.generator import GeneratedMessage, SalesSimulator
from streams.kafka_clients import producer, reader
from streams.malformed import interleave
from streams.model_evaluation import simulated_examples
from streams.model_store import Checkpoint, RedisModelStore
from streams.redis_commands import connect
from streams.settings import Settings
from streams.topics import ensure_topics
from streams.trainer import RecentIds, learn_example
from streams.training import untrained_models

#: Share of the backlog processed before throughput is measured (start-up excluded).
START_SHARE = 0.1
#: Seconds between scrapes of the workers' metrics (a scrape costs a worker a few ms of CPU and
#: the benchmark ~7 ms to parse).
SCRAPE_EVERY_S = 1.0
#: Seconds between scrapes until :data:`START_SHARE` of the events are done: the window starts at
#: the first scrape after that, which must come before a short phase is over.
START_SCRAPE_EVERY_S = 0.2
#: Simulated events whose training examples train the models the pipeline starts with.
PRETRAIN_EVENTS = 20_000
#: Counter of processed input events: the pipeline's, the baseline's.
PIPELINE_COUNTER = "salesguard_events_consumed_total"
BASELINE_COUNTER = "salesguard_bench_events_total"
#: When a worker (pipeline or baseline) last made progress, Unix time by stream.
PROGRESS_GAUGE = "salesguard_last_batch_timestamp_seconds"
#: Steady load is sent in ticks of this many seconds.
TICK_S = 0.002
#: The latency phase is also reported per slice of this many seconds of load.
SLICE_S = 5.0

T = TypeVar("T")


class BenchError(RuntimeError):
    """A phase did not complete (a worker died or stalled); the message says which and where its log is."""


@dataclass(frozen=True)
class BenchConfig:
    """What one benchmark run measures."""

    events: int = 100_000
    customers: int | None = None
    workers: int = 1
    rate: float | None = None
    duration_s: float = 20.0
    seed: int = 7
    timeout_s: float = 600.0
    #: Malformed messages (:mod:`streams.malformed`) spread among the backlog's events.
    malformed: int = 0
    #: Pairs of one-worker and ``workers``-worker phases for the scaling (``workers`` > 1): the
    #: first pair is the pipeline phase and the one before it; the others run after the latency
    #: phase, alternately in either order; the scaling reported is the median over the pairs.
    repeat: int = 1
    #: Redis was started for this run (not configured): each pipeline phase's database is emptied
    #: once the phase is done. What a phase leaves there (~100 MB with 100,000 events) slowed the
    #: pipeline phases after it: in four runs of ``--repeat 5`` the median of the last three
    #: pairs' ratios was below both of the first two's, and not in one with Redis emptied before
    #: each pair (5 Dec 09:37).
    own_redis: bool = False
    #: The broker was started for this run (not configured): the run's topics go with it. On a
    #: configured Kafka they are deleted when the run ends (each phase's backlog and outputs:
    #: ~100 MB per 100,000 events).
    own_kafka: bool = False

    @property
    def customer_count(self) -> int:
        """Customers in the traffic: ``customers``, else one per 40 events (as the generator)."""
        return self.customers or max(20, self.events // 40)


@dataclass(frozen=True)
class Throughput:
    """Events/s over the measured window, with the workers' CPU and memory."""

    eps: float
    cpu_s_per_1k: float
    peak_rss_mb: float
    #: CPU seconds of the embedded broker per 1,000 events (None: the broker is not ours to measure).
    broker_cpu_s_per_1k: float | None = None
    #: Seconds the trainer went on learning after the last input batch (None: not measured).
    training_tail_s: float | None = None
    #: The trainer process's share of ``cpu_s_per_1k``, and its peak RSS (None: no trainer process).
    trainer_cpu_s_per_1k: float | None = None
    trainer_peak_rss_mb: float | None = None


@dataclass
class Sample:
    """One scrape of every worker: when (Unix time), processed events (per worker), CPU seconds,
    training examples learned and published (per process: the workers', then the trainer's); the
    broker's CPU seconds (0 when not measured); and when the processes last made progress, and
    the workers last finished a batch of input events (Unix time; 0 when they do not say)."""

    at: float
    events: list[float]
    cpu_s: list[float]
    learned: list[float]
    published: list[float] = field(default_factory=list)
    broker_cpu_s: float = 0.0
    progressed_at: float = 0.0
    input_done_at: float = 0.0

    @property
    def work_done_at(self) -> float:
        """When the work this sample counts was done: the workers' last progress, unless they
        did not report it (then the scrape's time).

        >>> Sample(10.5, [3000.0], [1.5], [0.0], progressed_at=10.1).work_done_at
        10.1
        """
        return min(self.at, self.progressed_at) if self.progressed_at else self.at

    def cpu_s_per_1k(self, since: Sample) -> float:
        """The workers' CPU seconds per 1,000 events processed between ``since`` and this scrape.

        >>> Sample(2.0, [3000.0], [1.5], [0.0]).cpu_s_per_1k(Sample(1.0, [1000.0], [1.0], [0.0]))
        0.25
        """
        return round((sum(self.cpu_s) - sum(since.cpu_s)) / (sum(self.events) - sum(since.events)) * 1000, 4)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (``VmHWM``) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    raise BenchError(f"no VmHWM in /proc/{pid}/status")  # pragma: no cover - not Linux


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far (Linux).

    >>> process_cpu_s(os.getpid()) > 0
    True
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_wait_s(pid: int) -> float:
    """Seconds the process's threads (those alive now) have spent ready to run but waiting for a
    core (Linux ``schedstat``): on a machine whose cores are all busy, the time a worker or the
    broker could have worked and did not.

    >>> cpu_wait_s(os.getpid()) >= 0
    True
    """
    waited_ns = 0
    for stat in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            waited_ns += int(stat.read_text().split()[1])
    return waited_ns / 1e9


def cpu_pressure_s() -> float | None:
    """Seconds in which some task of the machine waited for a core, so far (Linux pressure stall
    information; None where the kernel does not report it)."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None
    return int(some.rsplit("total=", 1)[1]) / 1e6


async def cores_used(pid: int | None, slice_s: float, work: Awaitable[T]) -> tuple[T, list[float] | None]:
    """Run ``work``; meanwhile measure how many cores the process ``pid`` used in each ``slice_s``
    seconds (the last slice may be shorter; one under a second is left out). None without a pid."""
    task = asyncio.ensure_future(work)
    if pid is None:
        return await task, None
    cores: list[float] = []
    began, cpu = time.monotonic(), process_cpu_s(pid)
    while True:
        done, _ = await asyncio.wait({task}, timeout=slice_s)
        now, cpu_now = time.monotonic(), process_cpu_s(pid)
        if not done or now - began >= 1.0:
            cores.append(round((cpu_now - cpu) / (now - began), 2))
        began, cpu = now, cpu_now
        if done:
            return task.result(), cores


def p99_by_slice(produced_ms: dict[str, int], latency_ms: dict[str, float], slice_s: float) -> list[float | None]:
    """The p99 latency (ms) of the orders produced in each ``slice_s`` seconds from the first,
    in order (None for a slice without decided orders).

    >>> p99_by_slice({"a": 0, "b": 1000, "c": 11000, "d": 12000}, {"a": 10.0, "b": 30.0, "c": 100.0}, 5)
    [29.8, None, 100.0]
    >>> p99_by_slice({}, {}, 5)
    []
    """
    if not produced_ms:
        return []
    start = min(produced_ms.values())
    slices: list[list[float]] = []
    for source, at in produced_ms.items():
        if source in latency_ms:
            index = int((at - start) // (slice_s * 1000))
            slices.extend([] for _ in range(index + 1 - len(slices)))
            slices[index].append(latency_ms[source])
    return [percentiles_ms(latencies)["p99"] if latencies else None for latencies in slices]


def percentiles_ms(latencies_ms: list[float]) -> dict[str, float]:
    """p50/p95/p99 of ``latencies_ms``.

    >>> percentiles_ms([float(x) for x in range(1, 101)])
    {'p50': 50.5, 'p95': 95.05, 'p99': 99.01}
    """
    if not latencies_ms:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    p50, p95, p99 = np.percentile(np.asarray(latencies_ms), [50, 95, 99])
    return {"p50": round(float(p50), 2), "p95": round(float(p95), 2), "p99": round(float(p99), 2)}


class Workers:
    """``count`` worker child processes (``salesguard <command>``) in one consumer group, and
    with ``trainer`` a ``salesguard trainer`` process (counted with them: CPU, examples learned,
    progress)."""

    def __init__(self, settings: Settings, run_dir: Path, name: str, count: int, command: str, counter: str,
                 broker_pid: int | None = None, trainer: bool = False) -> None:
        self.counter, self.broker_pid = counter, broker_pid
        self.workers = [worker_service(settings, run_dir, f"{name}-{i}", command) for i in range(1, count + 1)]
        self.trainers = [worker_service(settings, run_dir, f"{name}-trainer", "trainer")] if trainer else []
        self.services = self.workers + self.trainers

    async def __aenter__(self) -> Workers:
        for service in self.services:
            service.spawn()
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()
        await asyncio.gather(*(asyncio.to_thread(service.stop, 15.0) for service in self.services))

    async def sample(self) -> Sample:
        """Processed events and CPU seconds of every worker now (0 for one not serving yet)."""
        pages = await asyncio.gather(*(self._scrape(service) for service in self.services))
        return Sample(time.time(), [sum(sample_values(page, self.counter)) for page in pages[:len(self.workers)]],
                      [sum(sample_values(page, "process_cpu_seconds_total")) for page in pages],
                      [sum(sample_values(page, "salesguard_model_examples_total")) for page in pages],
                      [sum(sample_values(page, "salesguard_model_examples_published_total")) for page in pages],
                      process_cpu_s(self.broker_pid) if self.broker_pid else 0.0,
                      max((at for page in pages for at in sample_values(page, PROGRESS_GAUGE)), default=0.0),
                      max((at for page in pages for at in sample_values(page, PROGRESS_GAUGE, stream="input")),
                          default=0.0))

    async def _scrape(self, service: ChildService) -> Samples:
        assert service.process is not None
        if service.process.poll() is not None:
            raise BenchError(f"{service.name} exited with code {service.process.returncode}.\n{service.log_tail()}")
        try:
            return await read_page(self.http, service.port)
        except (aiohttp.ClientError, TimeoutError):
            return {}  # not serving yet

    def peak_rss_mb(self) -> float:
        """The largest peak RSS of any worker."""
        return round(max(peak_rss_mb(service.pid) for service in self.workers), 1)

    def trainer_peak_rss_mb(self) -> float | None:
        """The trainer process's peak RSS (None without one)."""
        return round(max(peak_rss_mb(service.pid) for service in self.trainers), 1) if self.trainers else None

    async def drain(self, total: int, timeout_s: float, progress: Callable[[str], None],
                    learning: bool = False) -> Throughput:
        """Wait until the workers have processed ``total`` events and (with ``learning``) their
        trainers have learned every training example they published; the throughput from
        :data:`START_SHARE` of the events to the end."""
        first: Sample | None = None
        async for last in self.samples(total, timeout_s, progress):
            if first is None and sum(last.events) >= total * START_SHARE and all(last.events):
                first = last
        if learning:
            deadline = time.monotonic() + timeout_s
            while sum(last.learned) < sum(last.published):
                if time.monotonic() > deadline:
                    raise BenchError(f"the trainers learned {sum(last.learned):,.0f} of {sum(last.published):,.0f} "
                                     "examples in time")
                progress(f"trainers: {sum(last.learned):,.0f} / {sum(last.published):,.0f} examples")
                await asyncio.sleep(SCRAPE_EVERY_S)
                last = await self.sample()
        if first is None or last is first:
            raise BenchError(f"{total:,} events were processed too fast to measure; use more --events")
        events, seconds = sum(last.events) - sum(first.events), last.work_done_at - first.at
        broker_cpu = round((last.broker_cpu_s - first.broker_cpu_s) / events * 1000, 4) if self.broker_pid else None
        tail = None
        if learning and last.input_done_at:
            tail = round(max(0.0, last.work_done_at - last.input_done_at), 2)
        trainer_cpu = None
        if self.trainers:
            workers = len(self.workers)
            trainer_cpu = round((sum(last.cpu_s[workers:]) - sum(first.cpu_s[workers:])) / events * 1000, 4)
        return Throughput(eps=round(events / seconds, 1), cpu_s_per_1k=last.cpu_s_per_1k(first),
                          peak_rss_mb=self.peak_rss_mb(), broker_cpu_s_per_1k=broker_cpu, training_tail_s=tail,
                          trainer_cpu_s_per_1k=trainer_cpu, trainer_peak_rss_mb=self.trainer_peak_rss_mb())

    async def processed(self, total: int, timeout_s: float, progress: Callable[[str], None]) -> Sample:
        """Wait until the workers have processed ``total`` events; the scrape that saw it."""
        async for sample in self.samples(total, timeout_s, progress):
            last = sample
        return last

    async def samples(self, total: int, timeout_s: float, progress: Callable[[str], None]) -> AsyncIterator[Sample]:
        """Scrape every :data:`SCRAPE_EVERY_S` (:data:`START_SCRAPE_EVERY_S` until
        :data:`START_SHARE` of them are done) until the workers have processed ``total`` events."""
        deadline = time.monotonic() + timeout_s
        while True:
            sample = await self.sample()
            yield sample
            done = sum(sample.events)
            if done >= total:
                return
            if time.monotonic() > deadline:
                raise BenchError(f"after {timeout_s:.0f} s only {done:,.0f} of {total:,} events processed; logs: "
                                 + ", ".join(str(s.log_path) for s in self.services))
            progress(f"{done:,.0f} / {total:,} events")
            await asyncio.sleep(SCRAPE_EVERY_S if done >= total * START_SHARE else START_SCRAPE_EVERY_S)


@dataclass(frozen=True)
class Contention:
    """How contended the cores were over a stretch of time: the share of it in which some task
    waited for a core (``pressure``), and how many cores' worth of time the workers, the trainer
    process and the broker spent waiting for one (None: not measured)."""

    pressure: float | None
    workers_waiting: float
    trainer_waiting: float | None
    broker_waiting: float | None


class ContentionMeter:
    """Measures :class:`Contention` of ``workers`` (and their broker) from its creation to
    :meth:`stop`."""

    def __init__(self, workers: Workers) -> None:
        self.workers = workers
        self.began, self.pressure, self.waits = time.monotonic(), cpu_pressure_s(), self._waits()

    def _waits(self) -> list[float]:
        """Seconds waited for a core so far: by the workers, the trainer process, the broker."""
        broker_pid = self.workers.broker_pid
        return [sum(cpu_wait_s(service.pid) for service in self.workers.workers),
                sum(cpu_wait_s(service.pid) for service in self.workers.trainers),
                cpu_wait_s(broker_pid) if broker_pid else 0.0]

    def stop(self) -> Contention:
        seconds = time.monotonic() - self.began
        workers, trainer, broker = (round((now - then) / seconds, 2)
                                    for now, then in zip(self._waits(), self.waits, strict=True))
        pressure = cpu_pressure_s()
        return Contention(
            pressure=None if pressure is None or self.pressure is None
            else round((pressure - self.pressure) / seconds, 2),
            workers_waiting=workers, trainer_waiting=trainer if self.workers.trainers else None,
            broker_waiting=broker if self.workers.broker_pid else None)


def tail_note(throughput: Throughput) -> str:
    """How long the trainer learned alone at the end, for the log line.

    >>> tail_note(Throughput(eps=5000.0, cpu_s_per_1k=0.2, peak_rss_mb=200.0, training_tail_s=1.76))
    ' (the trainer learned alone for the last 1.76 s)'
    """
    tail = throughput.training_tail_s
    return f" (the trainer learned alone for the last {tail} s)" if tail else ""


def prefixed(progress: Callable[[str], None], prefix: str, text: str) -> None:
    """``progress(prefix + text)``: a phase's progress, saying which phase."""
    progress(prefix + text)


def simulator(config: BenchConfig) -> Iterator[GeneratedMessage]:
    """The generated traffic: the backlog first, then the steady load (no end)."""
    return iter(SalesSimulator(seed=config.seed, total_events=None, customers=config.customer_count,
                               run_id=f"b{config.seed}", bad_rate=0.005))


async def load_backlog(settings: Settings, messages: list[GeneratedMessage]) -> None:
    """Create the topics ``settings`` name and produce ``messages`` as fast as the broker takes them."""
    await ensure_topics(settings)
    kafka = producer(settings.kafka_bootstrap or "")
    await kafka.start()
    try:
        for message in messages:
            await kafka.send(settings.topic(message.topic), key=message.key, value=message.value)
        await kafka.flush()
    finally:
        await kafka.stop()


async def steady_load(settings: Settings, messages: Iterator[GeneratedMessage], rate: float, duration_s: float,
                      produced_ms: dict[str, int], acked_ms: dict[str, int]) -> int:
    """Produce ``rate`` messages/s for ``duration_s``, recording each order request's produce
    timestamp (ms) by event id in ``produced_ms`` and when the broker acknowledged it in
    ``acked_ms``; returns how many were sent."""
    kafka = producer(settings.kafka_bootstrap or "")
    await kafka.start()
    try:
        started, sent = time.monotonic(), 0
        total = int(rate * duration_s)
        while sent < total:
            due = min(total, int((time.monotonic() - started) * rate) + 1)
            for message in itertools.islice(messages, due - sent):
                now_ms = int(time.time() * 1000)
                delivery = await kafka.send(settings.topic(message.topic), key=message.key, value=message.value,
                                            timestamp_ms=now_ms)
                if message.needs_decision:
                    event_id = orjson.loads(message.value)["event_id"]
                    produced_ms[event_id] = now_ms
                    delivery.add_done_callback(partial(_record_ack, acked_ms, event_id))
            sent = due
            await asyncio.sleep(TICK_S)
        await kafka.flush()
    finally:
        await kafka.stop()
    return sent


def _record_ack(acked_ms: dict[str, int], event_id: str, delivery: asyncio.Future[Any]) -> None:
    if not delivery.cancelled() and delivery.exception() is None:
        acked_ms[event_id] = int(time.time() * 1000)


async def settled(published: dict[str, int], quiet_s: float = 1.0) -> None:
    """Wait until ``published`` has not grown for ``quiet_s`` seconds."""
    seen = -1
    while len(published) != seen:
        seen = len(published)
        await asyncio.sleep(quiet_s)


@dataclass
class DecisionsRead:
    """What the decisions topic said, by source event id (the first copy of a redelivered
    decision): each decision's publish timestamp (ms), and how long after the order's produce
    timestamp it was decided, before publishing (its ``latency_ms``, as the worker recorded it)."""

    published_ms: dict[str, int] = field(default_factory=dict)
    decided_after_ms: dict[str, float] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def decision_times(settings: Settings) -> AsyncIterator[DecisionsRead]:
    """While open: every decision published, as :class:`DecisionsRead`."""
    read = DecisionsRead()
    consumer = reader(settings.kafka_bootstrap or "", settings.topic("decisions"))
    await consumer.start()

    async def follow() -> None:
        while True:
            for records in (await consumer.getmany(timeout_ms=100, max_records=10_000)).values():
                for record in records:
                    decision = orjson.loads(record.value)
                    source = decision["source_event_id"]
                    if source not in read.published_ms:
                        read.published_ms[source] = record.timestamp
                        read.decided_after_ms[source] = decision["latency_ms"]

    task = asyncio.create_task(follow())
    try:
        yield read
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


def trained_checkpoint(settings: Settings, seed: int) -> tuple[Checkpoint, int]:
    """A model version trained on :data:`PRETRAIN_EVENTS` simulated events (other traffic than
    the benchmark's), so that the pipeline scores every order with both models from its first
    batch, as a worker joining a running system does; with how many examples it learned."""
    examples = simulated_examples(seed + 1000, PRETRAIN_EVENTS, settings.late_payment_days)
    models = untrained_models(settings)
    for example in examples:
        learn_example(models, example)
    learned = RecentIds()
    learned.add_many([example.example_id for example in examples])
    models.version = 1
    return Checkpoint(version=1, models=models.to_bytes(), learned=learned.to_bytes()), len(examples)


async def save_checkpoint(settings: Settings, checkpoint: Checkpoint) -> None:
    """Save ``checkpoint`` as the first version of each kind's models in the model store
    ``settings`` name (each trainer goes on learning its own kind from it)."""
    for kind in EXAMPLE_KINDS:
        store = RedisModelStore(settings.redis_url or "", kind)
        try:
            await store.save(checkpoint, previous=0)
        finally:
            await store.close()


def phase_settings(settings: Settings, run_id: str, prefix: str, group: str, redis_db: int) -> Settings:
    """``settings`` for one phase: topics under ``prefix``, consumer group ``group``, Redis database ``redis_db``."""
    redis_url = settings.redis_url
    if redis_url:
        parts = urlsplit(redis_url)
        redis_url = urlunsplit(parts._replace(path=f"/{redis_db}"))
    return settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}{prefix}-{run_id}.",
                                       "app_id": f"{group}-{run_id}", "redis_url": redis_url})


async def run_bench(settings: Settings, config: BenchConfig, run_dir: Path, progress: Callable[[str], None],
                    log: Callable[[str], None], broker_pid: int | None = None) -> dict[str, Any]:
    """Run every phase; the result line of ``salesguard bench``. ``progress`` gets what is going
    on now, ``log`` each phase's result; ``broker_pid``: the embedded broker's process, whose CPU
    is measured too."""
    run_id = f"{int(time.time())}"
    try:
        return await _run_phases(settings, config, run_dir, run_id, progress, log, broker_pid)
    finally:
        if not config.own_kafka:  # a broker that cannot be reached or refuses: the figures stand
            try:
                deleted = await delete_run_topics(settings.kafka_bootstrap or "", run_id)
                log(f"cleanup: {len(deleted)} topics of run {run_id} deleted")
            except KafkaError as exc:
                log(f"cleanup: could not delete the topics of run {run_id}: {exc!r}")


async def _run_phases(settings: Settings, config: BenchConfig, run_dir: Path, run_id: str,
                      progress: Callable[[str], None], log: Callable[[str], None],
                      broker_pid: int | None) -> dict[str, Any]:
    traffic = simulator(config)
    backlog = list(interleave(list(itertools.islice(traffic, config.events)), config.malformed, config.seed))
    main = phase_settings(settings, run_id, "bench", "pipeline", 1)
    progress(f"load: producing {len(backlog):,} events")
    await load_backlog(main, backlog)
    log(f"load: {len(backlog):,} events produced")

    progress("baseline: starting")
    baseline = await drained_baseline(main, len(backlog), config, run_dir, "baseline",
                                      lambda s: progress(f"baseline: {s}"), broker_pid)
    log(f"baseline: {baseline.eps:,.0f} events/s")

    checkpoint, pretrained = await asyncio.to_thread(trained_checkpoint, settings, config.seed)
    one_worker = None
    if config.workers > 1:
        single = phase_settings(settings, run_id, "bench-one", "pipeline-one", 2)
        await load_backlog(single, backlog)
        one_worker = await drained_pipeline(single, len(backlog), checkpoint, config, run_dir, "pipeline-one", 1,
                                            lambda s: progress(f"one worker: {s}"))
        log(f"one worker: {one_worker.eps:,.0f} events/s{tail_note(one_worker)}")

    await save_checkpoint(main, checkpoint)
    log(f"models: version 1 trained on {pretrained:,} examples")
    async with pipeline_workers(main, run_dir, "pipeline", config.workers, broker_pid) as workers:
        pipeline = await workers.drain(len(backlog), config.timeout_s, lambda s: progress(f"pipeline: {s}"),
                                       learning=True)
        log(f"pipeline: {pipeline.eps:,.0f} events/s{tail_note(pipeline)}")
        rate = config.rate or round(pipeline.eps / 2, 0)
        produced_ms: dict[str, int] = {}
        acked_ms: dict[str, int] = {}
        async with decision_times(main) as read:
            progress(f"latency: {rate:,.0f} events/s for {config.duration_s:.0f} s")
            before, meter = await workers.sample(), ContentionMeter(workers)
            sent, broker_cores = await cores_used(
                broker_pid, SLICE_S, steady_load(main, traffic, rate, config.duration_s, produced_ms, acked_ms))
            contention = meter.stop()
            after = await workers.processed(len(backlog) + sent, config.timeout_s, lambda s: progress(f"latency: {s}"))
            await settled(read.published_ms)
        published_ms = read.published_ms
        log(f"latency: {len(published_ms):,} decisions read")
        # An order request can be dead-lettered although well-formed (an amendment of an order
        # that was itself broken): only decided ones have a latency.
        latency_ms = {source: float(published_ms[source] - at) for source, at in produced_ms.items()
                      if source in published_ms}
        decided = [read.decided_after_ms[source] for source in latency_ms]  # read with its publish time
        to_broker = [acked_ms[source] - at for source, at in produced_ms.items() if source in acked_ms]
        peak, trainer_peak = workers.peak_rss_mb(), workers.trainer_peak_rss_mb()
    await done_with_redis(main, config)
    result: dict[str, Any] = {
        "run_id": run_id, "events": len(backlog), "malformed": config.malformed, "customers": config.customer_count,
        "workers": config.workers, "partitions": settings.partitions, "batch_window_ms": settings.batch_window_ms,
        "baseline_eps": baseline.eps, "pipeline_eps": pipeline.eps, "ratio": round(pipeline.eps / baseline.eps, 3),
        "latency_ms": percentiles_ms(list(latency_ms.values())),
        "latency_until_acked_ms": percentiles_ms([float(x) for x in to_broker]),
        "latency_until_decided_ms": percentiles_ms(decided),
        "latency_rate_eps": rate, "latency_duration_s": config.duration_s, "latency_orders": len(latency_ms),
        "latency_events": sent, "seed": config.seed,
        "peak_rss_mb": peak, "cpu_s_per_1k": pipeline.cpu_s_per_1k,
        "baseline_cpu_s_per_1k": baseline.cpu_s_per_1k, "baseline_peak_rss_mb": baseline.peak_rss_mb,
        "broker_cpu_s_per_1k": pipeline.broker_cpu_s_per_1k,
        "baseline_broker_cpu_s_per_1k": baseline.broker_cpu_s_per_1k,
        "latency_slice_s": SLICE_S, "latency_p99_ms_by_slice": p99_by_slice(produced_ms, latency_ms, SLICE_S),
        "broker_cores_by_slice": broker_cores, "latency_cpu_s_per_1k": after.cpu_s_per_1k(before),
        "latency_cpu_pressure": contention.pressure, "latency_workers_waiting_cores": contention.workers_waiting,
        "latency_trainer_waiting_cores": contention.trainer_waiting,
        "latency_broker_waiting_cores": contention.broker_waiting,
        "training_tail_s": pipeline.training_tail_s, "training": settings.training,
        "trainer_cpu_s_per_1k": pipeline.trainer_cpu_s_per_1k, "trainer_peak_rss_mb": trainer_peak,
    }
    if one_worker is not None:
        pairs = [(one_worker, pipeline)]
        for pair in range(1, config.repeat):
            pairs.append(await scaling_pair(settings, run_id, pair, backlog, checkpoint, config, run_dir,
                                            progress, log))
        scaling = [round(many.eps / one.eps, 3) for one, many in pairs]
        result.update(one_worker_eps=one_worker.eps, scaling=round(float(np.median(scaling)), 3),
                      one_worker_cpu_s_per_1k=one_worker.cpu_s_per_1k,
                      one_worker_training_tail_s=one_worker.training_tail_s)
        if len(pairs) > 1:
            result.update(scaling_by_pair=scaling, eps_by_pair=[[one.eps, many.eps] for one, many in pairs],
                          cpu_s_per_1k_by_pair=[[one.cpu_s_per_1k, many.cpu_s_per_1k] for one, many in pairs])
    elif config.repeat > 1:
        measured = [(baseline, pipeline)]
        for pair in range(1, config.repeat):
            measured.append(await ratio_pair(settings, run_id, pair, backlog, checkpoint, config, run_dir,
                                             progress, log))
        ratios = [round(piped.eps / base.eps, 3) for base, piped in measured]
        result.update(ratio=round(float(np.median(ratios)), 3), ratio_by_pair=ratios,
                      baseline_pipeline_eps_by_pair=[[base.eps, piped.eps] for base, piped in measured],
                      baseline_pipeline_cpu_s_per_1k_by_pair=[[base.cpu_s_per_1k, piped.cpu_s_per_1k]
                                                              for base, piped in measured])
    return result


async def delete_run_topics(bootstrap: str, run_id: str) -> list[str]:
    """Delete the topics of bench run ``run_id`` (its phases' topics and its consumer groups'
    changelog and assignor topics all name it); returns their names."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        await admin.start()
        ours = sorted(name for name in await admin.list_topics() if run_topic(name, run_id))
        if ours:
            await admin.delete_topics(ours)
        return ours
    finally:
        await admin.close()


def run_topic(name: str, run_id: str) -> bool:
    """Whether topic ``name`` belongs to bench run ``run_id`` (see :func:`phase_settings`).

    >>> [run_topic(name, "1765000000") for name in ("bench-1765000000.orders",
    ...     "pipeline-1765000000-customer-states-changelog", "orders", "bench-17650000001.orders")]
    [True, True, False, False]
    """
    return f"-{run_id}." in name or f"-{run_id}-" in name


def pipeline_workers(settings: Settings, run_dir: Path, name: str, count: int,
                     broker_pid: int | None = None) -> Workers:
    """``count`` salesguard workers, and a trainer process beside them with
    ``SALESGUARD_TRAINING=separate``."""
    return Workers(settings, run_dir, name, count, "worker", PIPELINE_COUNTER, broker_pid,
                   trainer=settings.training == "separate")


async def drained_baseline(settings: Settings, total: int, config: BenchConfig, run_dir: Path, name: str,
                           progress: Callable[[str], None], broker_pid: int | None = None) -> Throughput:
    """``config.workers`` baseline workers read the ``total`` events on ``settings``' input topics in
    a group of their own; their throughput."""
    baseline = settings.model_copy(update={"app_id": f"baseline-{settings.app_id}"})
    async with Workers(baseline, run_dir, name, config.workers, "baseline-worker", BASELINE_COUNTER,
                       broker_pid) as workers:
        return await workers.drain(total, config.timeout_s, progress)


async def drained_pipeline(settings: Settings, total: int, checkpoint: Checkpoint, config: BenchConfig,
                           run_dir: Path, name: str, count: int, progress: Callable[[str], None]) -> Throughput:
    """``count`` salesguard workers read the ``total`` events on ``settings``' input topics,
    starting from ``checkpoint``; their throughput, up to the last training example learned."""
    await save_checkpoint(settings, checkpoint)
    async with pipeline_workers(settings, run_dir, name, count) as workers:
        throughput = await workers.drain(total, config.timeout_s, progress, learning=True)
    await done_with_redis(settings, config)
    return throughput


async def done_with_redis(settings: Settings, config: BenchConfig) -> None:
    """Empty the Redis database of a pipeline phase that is done, if Redis is the run's own
    (``config.own_redis``)."""
    if config.own_redis:
        client = connect(settings.redis_url or "")
        try:
            await client.flushdb()
        finally:
            await client.aclose()


async def scaling_pair(settings: Settings, run_id: str, pair: int, backlog: list[GeneratedMessage],
                       checkpoint: Checkpoint, config: BenchConfig, run_dir: Path,
                       progress: Callable[[str], None], log: Callable[[str], None]) -> tuple[Throughput, Throughput]:
    """One more pair of phases for the scaling (``pair`` from 1): one worker and ``config.workers``
    workers on the backlog, the many first in odd pairs (a VM that speeds up or slows down during
    the run then favours neither); their throughputs, one worker's first."""
    measured: dict[int, Throughput] = {}
    for count in (config.workers, 1) if pair % 2 else (1, config.workers):
        name = f"pair{pair + 1}-{count}w"
        redis_db = 16 - 2 * pair + (count == 1)  # from the last of Redis's 16 down: 15 and 14, 13 and 12, ...
        phase = phase_settings(settings, run_id, f"bench-{name}", f"pipeline-{name}", redis_db)
        progress(f"{name}: loading the backlog into its own topics")
        await load_backlog(phase, backlog)
        throughput = await drained_pipeline(phase, len(backlog), checkpoint, config, run_dir, f"pipeline-{name}",
                                            count, partial(prefixed, progress, f"{name}: "))
        measured[count] = throughput
        log(f"pair {pair + 1}, {count} worker{'s' if count > 1 else ''}: {throughput.eps:,.0f} events/s"
            f"{tail_note(throughput)}")
    return measured[1], measured[config.workers]


async def ratio_pair(settings: Settings, run_id: str, pair: int, backlog: list[GeneratedMessage],
                     checkpoint: Checkpoint, config: BenchConfig, run_dir: Path,
                     progress: Callable[[str], None], log: Callable[[str], None]) -> tuple[Throughput, Throughput]:
    """One more pair of phases for the ratio (``pair`` from 1): the baseline and the pipeline read
    the backlog from topics of the pair's own (each in its own group), the pipeline first in odd
    pairs (a VM that speeds up or slows down during the run then favours neither); their
    throughputs, the baseline's first."""
    name = f"pair{pair + 1}"
    phase = phase_settings(settings, run_id, f"bench-{name}", f"pipeline-{name}", 16 - pair)  # Redis 15, 14, ...
    progress(f"{name}: loading the backlog into its own topics")
    await load_backlog(phase, backlog)
    measured: dict[str, Throughput] = {}
    for which in ("pipeline", "baseline") if pair % 2 else ("baseline", "pipeline"):
        report = partial(prefixed, progress, f"{name} {which}: ")
        if which == "baseline":
            throughput = await drained_baseline(phase, len(backlog), config, run_dir, f"baseline-{name}", report)
        else:
            throughput = await drained_pipeline(phase, len(backlog), checkpoint, config, run_dir, f"pipeline-{name}",
                                                1, report)
        measured[which] = throughput
        log(f"pair {pair + 1}, {which}: {throughput.eps:,.0f} events/s{tail_note(throughput)}")
    return measured["baseline"], measured["pipeline"]
