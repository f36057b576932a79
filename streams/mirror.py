"""The Redis mirror: what people and other services read. Written behind the stream (the worker
stages each batch's update and a background task writes what is staged, in a few script calls:
:mod:`streams.redis_commands`); if Redis is down the writes wait in memory and go out with the
next write. Snapshots are taken when the write happens, from the current state, and written only
over an older one (fewer ``events_applied``, kept in ``sg:customer-versions``): after a rebalance,
a worker that held a customer before can never put its older snapshot over the new owner's.

Keys (``prefix`` defaults to ``sg:``):

- ``sg:customer:<customer_id>`` — the customer's risk snapshot (JSON)
- ``sg:holds`` — sorted set of held order ids, scored by hold time
- ``sg:hold:<order_id>`` — the hold (JSON :class:`~streams.contracts.OrderHold`)
- ``sg:decision:<order_id>`` — the order's latest decision (JSON, kept :data:`DECISION_TTL_DAYS`)
- ``sg:customer:<customer_id>:decisions`` — the customer's latest decisions, newest first
  (:data:`RECENT_DECISIONS`; a decision redelivered after a crash may appear twice, same id)
- ``sg:sales:...`` — per-salesperson signals (:mod:`streams.sales_staff`)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import RedisError

from monitoring.metrics import REDIS_ERRORS
from streams import sales_staff
from streams.contracts import Decision, HoldResolved, OrderHold, dumps
from streams.redis_commands import RUN_COMMANDS, CommandBatch, connect, run

log = logging.getLogger(__name__)

#: How long an order's decision stays readable by the desk.
DECISION_TTL_DAYS = 30
#: How many decisions per customer the desk's customer view shows.
RECENT_DECISIONS = 20
#: Snapshots per script call when a write is large.
CHUNK = 500
#: Sets each snapshot (KEYS[2…], ARGV: version, JSON per key) unless the version kept in the hash
#: KEYS[1] is newer.
NEWER_SNAPSHOTS = """
for i = 2, #KEYS do
  local version = tonumber(ARGV[2 * i - 3])
  if version >= tonumber(redis.call('HGET', KEYS[1], KEYS[i]) or '-1') then
    redis.call('SET', KEYS[i], ARGV[2 * i - 2])
    redis.call('HSET', KEYS[1], KEYS[i], version)
  end
end
return 0
"""


#: Returns a customer's current risk snapshot (with ``events_applied``), None for a customer this
#: worker does not hold (any more).
Snapshotter = Callable[[str], dict[str, Any] | None]


@dataclass
class MirrorUpdate:
    """Writes waiting to reach Redis: customers whose snapshot changed, holds opened and closed,
    decisions, and holds the desk resolved."""

    customers: set[str] = field(default_factory=set)
    holds_opened: dict[str, OrderHold] = field(default_factory=dict)
    holds_closed: set[str] = field(default_factory=set)
    decisions: list[Decision] = field(default_factory=list)
    resolutions: list[HoldResolved] = field(default_factory=list)
    #: Decisions already serialized (for the broker), by decision id: not serialized again.
    decision_json: dict[str, bytes] = field(default_factory=dict)

    def merge(self, other: MirrorUpdate) -> None:
        """Fold ``other`` (newer) into this update."""
        self.customers |= other.customers
        for order_id in other.holds_closed:
            self.holds_opened.pop(order_id, None)
            self.holds_closed.add(order_id)
        for order_id, hold in other.holds_opened.items():
            self.holds_closed.discard(order_id)
            self.holds_opened[order_id] = hold
        self.decisions += other.decisions
        self.resolutions += other.resolutions
        self.decision_json |= other.decision_json

    def __bool__(self) -> bool:
        return bool(self.customers or self.holds_opened or self.holds_closed or self.decisions or self.resolutions)


class RedisMirror:
    """Writes :class:`MirrorUpdate` batches to Redis, keeping them until a write succeeds."""

    def __init__(self, url: str, snapshot: Snapshotter, prefix: str = "sg:") -> None:
        self.client = connect(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.snapshot = snapshot
        self.prefix = prefix
        self.pending = MirrorUpdate()
        self._lock = asyncio.Lock()
        self._newer_snapshots = self.client.register_script(NEWER_SNAPSHOTS)
        self._run_commands = self.client.register_script(RUN_COMMANDS)

    def stage(self, update: MirrorUpdate) -> None:
        """Keep ``update`` for the next :meth:`write`."""
        self.pending.merge(update)

    async def write(self, update: MirrorUpdate) -> bool:
        """Write ``update`` (and anything still pending). False when Redis failed; the writes
        are kept and retried with the next call."""
        self.pending.merge(update)
        async with self._lock:
            batch, self.pending = self.pending, MirrorUpdate()
            if not batch:
                return True
            try:
                await self._write_snapshots(list(batch.customers))
                await run(self._run_commands, self._commands(batch))
            except (RedisError, OSError) as exc:
                REDIS_ERRORS.inc()
                batch.merge(self.pending)
                self.pending = batch
                log.warning("Redis mirror write failed (%s); %d customers kept for retry",
                            type(exc).__name__, len(batch.customers))
                return False
            return True

    async def _write_snapshots(self, customers: list[str]) -> None:
        """Write the customers' snapshots, one script call per :data:`CHUNK` customers (a large
        write lets the stream run between its calls)."""
        p = self.prefix
        for start in range(0, len(customers), CHUNK):
            keys, args = [f"{p}customer-versions"], []
            for customer_id in customers[start:start + CHUNK]:
                if (snapshot := self.snapshot(customer_id)) is not None:
                    keys.append(f"{p}customer:{customer_id}")
                    args += [snapshot["events_applied"], orjson.dumps(snapshot)]
            if args:
                await self._newer_snapshots(keys=keys, args=args)

    def _commands(self, batch: MirrorUpdate) -> CommandBatch:
        """The writes of ``batch`` but the snapshots: holds, decisions, salesperson signals."""
        p, commands = self.prefix, CommandBatch()
        for order_id, hold in batch.holds_opened.items():
            commands.add("SET", f"{p}hold:{order_id}", dumps(hold))
            commands.add("ZADD", f"{p}holds", hold.held_at.timestamp(), order_id)
        for order_id in batch.holds_closed:
            commands.add("DEL", f"{p}hold:{order_id}")
            commands.add("ZREM", f"{p}holds", order_id)
        recent: dict[str, list[bytes]] = {}
        for decision in batch.decisions:
            body = batch.decision_json.get(decision.decision_id) or dumps(decision)
            commands.add("SET", f"{p}decision:{decision.order_id}", body, "EX", DECISION_TTL_DAYS * 86_400)
            recent.setdefault(decision.customer_id, []).append(body)
        for customer_id, bodies in recent.items():  # oldest pushed first: the newest ends up first
            commands.add("LPUSH", f"{p}customer:{customer_id}:decisions", *bodies[-RECENT_DECISIONS:])
            commands.add("LTRIM", f"{p}customer:{customer_id}:decisions", 0, RECENT_DECISIONS - 1)
        sales_staff.record(commands, p, batch.decisions, batch.resolutions)
        return commands

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

