"""Deploying rulebooks to running workers: ``salesguard rules apply`` / ``rollback`` publish a
:class:`RulebookApplied` message on the single-partition ``rulebooks`` topic; every worker reads
the whole topic (outside any consumer group), starts with the latest rulebook that compiles,
and switches to each new one between two batches — never inside one, so no order is decided by
a half-applied rulebook. A message whose rulebook does not compile is logged and counted, and
the running rulebook stays.

Decisions record ``<sequence>:<name>@<content hash>``; before anything was applied, the
configured file's ``<name>@<content hash>``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import orjson
import yaml
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from monitoring import metrics
from rules import DEFAULT_RULEBOOK, CompiledRulebook, RulebookError, compile_data
from streams.contracts import RulebookApplied, dumps
from streams.kafka_clients import producer, reader
from streams.settings import Settings

log = logging.getLogger(__name__)

TOPIC = "rulebooks"


def compile_applied(applied: RulebookApplied) -> CompiledRulebook:
    """A deployment's rulebook, compiled, with its sequence in the version; raises
    :class:`RulebookError`."""
    try:
        data = yaml.safe_load(applied.content)
    except yaml.YAMLError as exc:
        raise RulebookError(f"rulebook #{applied.sequence}", [" ".join(f"not valid YAML: {exc}".split())]) from None
    book = compile_data(data, source=f"rulebook #{applied.sequence}")
    book.version = f"{applied.sequence}:{book.version}"
    return book


def parse(value: bytes) -> RulebookApplied | None:
    """A control message, or None (logged) when it is not one."""
    try:
        return RulebookApplied.model_validate(orjson.loads(value))
    except (orjson.JSONDecodeError, ValidationError) as exc:
        log.error("ignoring a message on the rulebooks topic that is not a rulebook: %s", str(exc)[:200])
        return None


async def history(settings: Settings, quiet_s: float = 1.0, timeout_s: float = 30.0) -> list[RulebookApplied]:
    """Every deployment so far, in order (read until the topic has been quiet for ``quiet_s``)."""
    consumer = reader(settings.kafka_bootstrap or "", settings.topic(TOPIC))
    await consumer.start()
    found: list[RulebookApplied] = []
    try:
        deadline, last_seen = time.monotonic() + timeout_s, time.monotonic()
        while time.monotonic() - last_seen < quiet_s and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                last_seen = time.monotonic()
                found += [applied for r in records if (applied := parse(r.value)) is not None]
    finally:
        await consumer.stop()
    return found


def to_restore(history: list[RulebookApplied]) -> RulebookApplied | None:
    """The deployment a rollback returns to: the one before the current one (stepping over
    rollbacks, so rolling back twice goes two versions back). Deployments the workers refused
    (they do not compile) never count."""
    applied = [a for a in history if _compiles(a)]
    by_sequence = {a.sequence: a for a in applied}
    current = applied[-1] if applied else None
    while current is not None and current.restores is not None:
        current = by_sequence.get(current.restores)
    if current is None:
        return None
    earlier = [a for a in applied if a.sequence < current.sequence and a.restores is None]
    return earlier[-1] if earlier else None


def current(history: list[RulebookApplied]) -> RulebookApplied | None:
    """The deployment the workers decide with: the latest that compiles."""
    return next((a for a in reversed(history) if _compiles(a)), None)


def with_emergency(content: str, active: bool, segments: list[dict[str, str]], limit_factor: float | None) -> str:
    """A rulebook's text with its emergency section switched on (holding ``segments``, every
    limit times ``limit_factor``) or off — "emergency mode in one action". Raises
    :class:`RulebookError` when the result is not a valid rulebook."""
    data = yaml.safe_load(content)
    if not isinstance(data, dict):
        raise RulebookError("rulebook", ["not a rulebook (a YAML mapping)"])
    emergency = dict(data.get("emergency") or {})
    emergency["active"] = active
    if segments:
        emergency["hold_segments"] = segments
    if limit_factor is not None:
        emergency["limit_factor"] = limit_factor
    data["emergency"] = emergency
    compile_data(data)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _compiles(applied: RulebookApplied) -> bool:
    try:
        compile_applied(applied)
    except RulebookError:
        return False
    return True


async def publish(settings: Settings, content: str, restores: int | None = None) -> RulebookApplied:
    """Publish a deployment after the latest one (the caller has validated ``content``)."""
    applied = await history(settings)
    message = RulebookApplied(sequence=(applied[-1].sequence if applied else 0) + 1, content=content,
                              applied_at=datetime.now(UTC), restores=restores)
    kafka = producer(settings.kafka_bootstrap or "")
    await kafka.start()
    try:
        await kafka.send_and_wait(settings.topic(TOPIC), key=b"rulebook", value=dumps(message))
    finally:
        await kafka.stop()
    return message


async def switch_emergency(settings: Settings, active: bool, segments: list[dict[str, str]],
                           limit_factor: float | None) -> RulebookApplied:
    """Emergency mode in one action: deploy the running rulebook (the configured file when none
    was deployed) with its emergency section switched on or off; raises
    :class:`~rules.RulebookError` when the result does not compile."""
    running = current(await history(settings))
    base = running.content if running else (settings.rulebook or DEFAULT_RULEBOOK).read_text(encoding="utf-8")
    return await publish(settings, with_emergency(base, active, segments, limit_factor))


async def follow(settings: Settings, use: Callable[[CompiledRulebook], Awaitable[None]],
                 ready: asyncio.Event) -> None:
    """A worker's side: apply the latest rulebook that compiles, set ``ready`` once the topic's
    history (up to its end offset when the worker started) is read, then apply each new
    deployment as it arrives (run as a task, forever)."""
    topic = settings.topic(TOPIC)
    consumer = reader(settings.kafka_bootstrap or "", topic)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)  # one partition: the deployments in order
        history_end = (await consumer.end_offsets([partition]))[partition]
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=200)
            except KafkaError as exc:  # the broker away for a while: keep the running rulebook, retry
                log.warning("cannot read the rulebooks topic (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            for records in batches.values():
                for record in records:
                    applied = parse(record.value)
                    if applied is None:
                        continue
                    try:
                        book = compile_applied(applied)
                    except RulebookError as exc:
                        metrics.RULEBOOKS_REJECTED.inc()
                        log.error("rulebook #%d not applied, keeping the running one: %s", applied.sequence, exc)
                        continue
                    await use(book)
            if not ready.is_set() and await consumer.position(partition) >= history_end:
                ready.set()
    finally:
        await consumer.stop()
