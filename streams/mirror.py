"""The Redis mirror: what people and other services read. Written behind the stream (the worker
stages each batch's update and a background task writes what is staged, in round trips of up to
:data:`CHUNK` commands); if Redis is down the writes wait in memory and go out with the next write.
Snapshots are taken when the write happens, from the current state, and written only over an
older one (fewer ``events_applied``, kept in ``sg:customer-versions``): after a rebalance, a
worker that held a customer before can never put its older snapshot over the new owner's.

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
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from monitoring.metrics import REDIS_ERRORS
from streams import sales_staff
from streams.contracts import Decision, HoldResolved, OrderHold, dumps

log = logging.getLogger(__name__)

#: How long an order's decision stays readable by the desk.
DECISION_TTL_DAYS = 30
#: How many decisions per customer the desk's customer view shows.
RECENT_DECISIONS = 20
#: Commands per round trip when a write is large.
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
        self.client = aioredis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.snapshot = snapshot
        self.prefix = prefix
        self.pending = MirrorUpdate()
        self._lock = asyncio.Lock()
        self._newer_snapshots = self.client.register_script(NEWER_SNAPSHOTS)

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
            pipe = self.client.pipeline(transaction=False)
            try:
                await self._queue(pipe, batch)
                await pipe.execute()
            except (RedisError, OSError) as exc:
                REDIS_ERRORS.inc()
                batch.merge(self.pending)
                self.pending = batch
                log.warning("Redis mirror write failed (%s); %d customers kept for retry",
                            type(exc).__name__, len(batch.customers))
                return False
            return True

    async def _queue(self, pipe: Any, batch: MirrorUpdate) -> None:
        """Queue ``batch``'s writes on ``pipe``, sending every :data:`CHUNK` commands (a large
        write lets the stream run between its round trips)."""
        p = self.prefix
        customers = list(batch.customers)
        for start in range(0, len(customers), CHUNK):  # one script call per chunk of snapshots
            if start:
                await pipe.execute()
            keys, args = [f"{p}customer-versions"], []
            for customer_id in customers[start:start + CHUNK]:
                if (snapshot := self.snapshot(customer_id)) is not None:
                    keys.append(f"{p}customer:{customer_id}")
                    args += [snapshot["events_applied"], orjson.dumps(snapshot)]
            if args:
                await self._newer_snapshots(keys=keys, args=args, client=pipe)
        for order_id, hold in batch.holds_opened.items():
            pipe.set(f"{p}hold:{order_id}", dumps(hold))
            pipe.zadd(f"{p}holds", {order_id: hold.held_at.timestamp()})
        if batch.holds_closed:
            closed = list(batch.holds_closed)
            pipe.delete(*(f"{p}hold:{order_id}" for order_id in closed))
            pipe.zrem(f"{p}holds", *closed)
        recent: dict[str, list[bytes]] = {}
        for decision in batch.decisions:
            body = batch.decision_json.get(decision.decision_id) or dumps(decision)
            pipe.set(f"{p}decision:{decision.order_id}", body, ex=DECISION_TTL_DAYS * 86_400)
            recent.setdefault(decision.customer_id, []).append(body)
            await _send_when_full(pipe)
        for customer_id, bodies in recent.items():  # oldest pushed first: the newest ends up first
            pipe.lpush(f"{p}customer:{customer_id}:decisions", *bodies)
            pipe.ltrim(f"{p}customer:{customer_id}:decisions", 0, RECENT_DECISIONS - 1)
        sales_staff.record(pipe, p, batch.decisions, batch.resolutions)

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


async def _send_when_full(pipe: Any) -> None:
    """Send ``pipe``'s queued commands once there are :data:`CHUNK` of them."""
    if len(pipe) >= CHUNK:
        await pipe.execute()
