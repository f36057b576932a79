"""The real embedded stack (Tansu broker + Redis server) and a real worker process, started
once per test session."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from monitoring.access import DeskUser
from streams.demo import EMBEDDED_BROKER_SETTINGS, SIMULATION_SETTINGS, worker_service
from streams.embedded import ChildService, EmbeddedStack
from streams.kafka_clients import producer, reader
from streams.settings import Settings
from streams.topics import ensure_topics
from tests import events as ev

pytestmark = pytest.mark.integration

#: Desk tokens of the test worker, by role.
TOKENS = {"viewer": "viewer-token-0123456789", "analyst": "analyst-token-0123456789",
          "admin": "admin-token-0123456789"}


class Worker:
    """A ``salesguard worker`` child process that can be restarted."""

    def __init__(self, settings: Settings, run_dir: Path) -> None:
        self.settings, self.run_dir = settings, run_dir
        self.process: ChildService | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.process = worker_service(self.settings, self.run_dir, f"worker-{self.starts}")
        self.process.start(timeout=60)

    @property
    def running(self) -> bool:
        """Whether the worker's process is alive."""
        return self.process is not None and self.process.running

    @property
    def port(self) -> int:
        """The port of the worker's web server (metrics, health)."""
        assert self.process is not None, "the worker was never started"
        return self.process.port

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=20)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no commit."""
        assert self.process is not None and self.process.process is not None
        self.process.process.kill()
        self.process.process.wait()


class Client:
    """Produces input events and reads outputs and the Redis mirror, like the ERP and desk would."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redis = aioredis.from_url(settings.redis_url or "")

    async def send(self, *events_or_raw) -> None:
        kafka = producer(self.settings.kafka_bootstrap or "")
        await kafka.start()
        try:
            for item in events_or_raw:
                if isinstance(item, dict):
                    topic, key, value = ev.topic_of(item), item["customer_id"].encode(), ev.encode(item)
                else:
                    topic, key, value = item
                await kafka.send(self.settings.topic(topic), key=key, value=value)
            await kafka.flush()
        finally:
            await kafka.stop()

    async def collect(self, topic: str, until, timeout: float = 60.0) -> list[dict]:
        """Read ``topic`` from the start until ``until(records)`` holds; returns the records (each
        element of a record holding a JSON array, as ``model-examples`` records do)."""
        consumer = reader(self.settings.kafka_bootstrap or "", self.settings.topic(topic))
        await consumer.start()
        records: list[dict] = []
        deadline = time.monotonic() + timeout
        try:
            while not until(records):
                if time.monotonic() > deadline:
                    raise AssertionError(f"timed out on {topic}: {len(records)} records, last {records[-3:]}")
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    for r in batch:
                        value = orjson.loads(r.value)
                        records.extend({"_key": r.key, "_partition": r.partition, "_offset": r.offset, **element}
                                       for element in (value if isinstance(value, list) else [value]))
        finally:
            await consumer.stop()
        return records

    async def snapshot(self, customer_id: str) -> dict | None:
        raw = await self.redis.get(f"sg:customer:{customer_id}")
        return orjson.loads(raw) if raw else None

    async def onboard(self, *customers: dict, timeout: float = 60.0) -> None:
        """Send customer master data and wait until it is applied: orders sent afterwards are
        decided against it (the ``customers`` and ``orders`` topics are consumed independently)."""
        await self.send(*customers)
        for customer in customers:
            await self.settled(customer["customer_id"], events_applied=1, timeout=timeout)

    async def settled(self, customer_id: str, events_applied: int, timeout: float = 60.0) -> dict:
        """The customer's snapshot once ``events_applied`` events have been applied to it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snap = await self.snapshot(customer_id)
            if snap is not None and snap["events_applied"] >= events_applied:
                return snap
            await asyncio.sleep(0.1)
        raise AssertionError(f"{customer_id} did not reach {events_applied} applied events: {snap}")


def stall_reports(logs: Path, max_lines: int = 1000) -> str:
    """The "consumer stalled" reports (with their task dumps) in the worker logs under ``logs``."""
    reports = []
    for path in sorted(logs.rglob("*.log")):
        lines = path.read_text(errors="replace").splitlines()
        for start, line in enumerate(lines):
            if "consumer stalled" in line:
                end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
                reports.append(f"{path}:\n" + "\n".join(lines[start:min(end, start + max_lines)]))
    return "\n\n".join(reports)


#: Worker log lines that tell a rebalance's steps (see :func:`rebalance_timeline`).
REBALANCE_STEPS = re.compile(r"Revoking previously|Joined group|Recovery complete|Worker ready|Not resuming|"
                             r"rebalance again|Restarting Recovery|\[\^Worker\]: (Starting|Stopping)|\[ERROR\]")


def rebalance_timeline(logs: Path, limit: int = 120) -> str:
    """The rebalance steps in the worker logs under ``logs``, in time order, each with its
    worker's log (``worker-0/worker-2``: the first worker's second start)."""
    steps = []
    for path in logs.rglob("worker-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            if REBALANCE_STEPS.search(line):
                steps.append(f"{line[12:24]} {path.parent.name}/{path.stem}: {line[26:].strip()[:110]}")
    steps.sort()
    return "\n".join(steps[-limit:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed integration test's report shows what stalled workers were waiting on and, for a
    test that ran its own workers, their rebalance steps, so a failure on a machine whose files
    are gone still shows who owned what when."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        reports = stall_reports(item.config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
        if reports:
            report.sections.append(("worker stalls", reports))
        own = getattr(item, "funcargs", {}).get("tmp_path")
        if own is not None and (timeline := rebalance_timeline(own)):
            report.sections.append(("worker rebalances", timeline))


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(tmp_path_factory.mktemp("stack")) as started:
        yield started


@pytest.fixture(scope="session")
def settings(stack: EmbeddedStack) -> Settings:
    users = [DeskUser.model_validate({"user": f"{role}-1", "role": role, "token": token})
             for role, token in TOKENS.items()]
    return Settings(kafka_bootstrap=stack.kafka_bootstrap, redis_url=stack.redis_url, partitions=4,
                    overdue_refresh_s=5, model_publish_s=1, model_refresh_s=1, desk_tokens=users,
                    **EMBEDDED_BROKER_SETTINGS, **SIMULATION_SETTINGS)  # test events run their own clock


@pytest.fixture(scope="session")
def worker(settings: Settings, tmp_path_factory) -> Iterator[Worker]:
    asyncio.run(ensure_topics(settings))
    running = Worker(settings, tmp_path_factory.mktemp("worker"))
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="session")
async def client(settings: Settings, worker: Worker) -> Client:
    c = Client(settings)
    # Warm-up: the first decision proves the worker has joined its group and owns partitions.
    await c.send(ev.customer("C-WARMUP"))
    await c.send(ev.order("C-WARMUP", "SO-WARMUP", 1.0, days=1))
    await c.collect("decisions", lambda rs: any(r["order_id"] == "SO-WARMUP" for r in rs), timeout=90)
    return c
