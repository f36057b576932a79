"""The audit trail: every decision and every desk action, appended to a hash-chained log.

Each entry carries its sequence number, the hash of the entry before it and its own hash,
``sha256(prev_hash + canonical JSON of {seq, record})``: changing, removing or reordering any
entry breaks the chain at that entry, and ``salesguard audit verify`` names it.

Stored in a Redis stream (``sg:audit``) with the chain's head (``sg:audit:head``, last seq and
hash). Several workers append to one chain: each append is a script that appends only if the
head it chained after is still the head, and is chained again after the head found when another
writer moved it first (optimistic locking), so the chain stays one line. Entries wait in memory
while Redis is unreachable and go out with the next append. A batch redelivered after a crash
may append its decisions again, with the same decision ids.

>>> first = chain_entry(1, GENESIS, {"kind": "desk", "actor": "alice"})
>>> second = chain_entry(2, first["hash"], {"kind": "desk", "actor": "bob"})
>>> find_break([first, second]) is None
True
>>> second["record"]["actor"] = "mallory"
>>> find_break([first, second])
(2, 'entry 2 was altered: its content does not match its hash')
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson
from redis.exceptions import RedisError

from monitoring.metrics import REDIS_ERRORS
from streams.contracts import Decision, DeskAction
from streams.redis_commands import connect

log = logging.getLogger(__name__)

#: The hash the first entry follows.
GENESIS = "0" * 64
#: Entries read per round trip when the chain is walked.
PAGE = 1000
#: Entries appended per script call.
ENTRIES_PER_CALL = 1000
#: Appends the entries ARGV[3…] to the stream KEYS[1] and moves the head KEYS[2] to ARGV[2] if the
#: head is still ARGV[1] (empty: none); otherwise returns the head found, appending nothing.
APPEND_ENTRIES = """
local head = redis.call('GET', KEYS[2]) or ''
if head ~= ARGV[1] then
  return {0, head}
end
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'entry', ARGV[i])
end
redis.call('SET', KEYS[2], ARGV[2])
return {1}
"""


def _digest(seq: int, prev: str, record: dict[str, Any]) -> str:
    body = orjson.dumps({"seq": seq, "record": record}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev.encode() + body).hexdigest()


def chain_entry(seq: int, prev: str, record: dict[str, Any]) -> dict[str, Any]:
    """The entry that appends ``record`` after the entry with hash ``prev``."""
    return {"seq": seq, "prev": prev, "record": record, "hash": _digest(seq, prev, record)}


def find_break(entries: Iterable[dict[str, Any]], head: tuple[int, str] | None = None) -> tuple[int, str] | None:
    """The first entry where the chain breaks, as ``(seq, why)``; None when it is intact (and,
    given ``head`` = the recorded last (seq, hash), nothing is missing at the end either)."""
    seq, prev = 0, GENESIS
    for entry in entries:
        seq += 1
        if entry.get("seq") != seq:
            return seq, f"entry {seq} is missing (the next entry found is {entry.get('seq')})"
        if entry.get("prev") != prev:
            return seq, f"entry {seq} does not follow entry {seq - 1}: entry {seq - 1} was altered or replaced"
        if _digest(seq, prev, entry.get("record", {})) != entry.get("hash"):
            return seq, f"entry {seq} was altered: its content does not match its hash"
        prev = entry["hash"]
    if head is not None and head != (seq, prev):
        return seq + 1, f"entries {seq + 1} to {head[0]} are missing (the head records entry {head[0]})"
    return None


def decision_record(decision: Decision) -> dict[str, Any]:
    """What the trail keeps of a decision: who (the rulebook and model versions), what, when, why."""
    return {"kind": "decision", "at": decision.decided_at.isoformat(), "order_id": decision.order_id,
            "customer_id": decision.customer_id, "salesperson_id": decision.salesperson_id,
            "decision_id": decision.decision_id, "outcome": decision.outcome.value,
            "reasons": [reason.code for reason in decision.reasons], "order_amount": decision.order_amount,
            "rulebook_version": decision.rulebook_version, "model_version": decision.model_version}


def desk_record(action: DeskAction) -> dict[str, Any]:
    """What the trail keeps of a desk command and what the stream did with it."""
    return {"kind": "desk", **action.model_dump(mode="json")}


class AuditTrail:
    """Appends records to the chain in Redis (asynchronous, for workers and the desk)."""

    def __init__(self, url: str, prefix: str = "sg:") -> None:
        self.client = connect(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.stream, self.head = f"{prefix}audit", f"{prefix}audit:head"
        self.pending: list[dict[str, Any]] = []
        #: The head as this writer last saw it (empty: no chain yet), checked by each append.
        self._head = b""
        self._append = self.client.register_script(APPEND_ENTRIES)

    def stage(self, records: Iterable[dict[str, Any]]) -> None:
        """Keep ``records`` for the next :meth:`append`."""
        self.pending += records

    async def append(self, records: Iterable[dict[str, Any]]) -> bool:
        """Append ``records`` (and any kept from a failed append) in order, up to
        :data:`ENTRIES_PER_CALL` per script call. False when Redis failed: what was not appended
        is kept for the next call."""
        self.pending += records
        batch, self.pending = self.pending, []
        done = 0
        try:
            while done < len(batch):
                chunk = batch[done:done + ENTRIES_PER_CALL]
                seq, prev = _parse_head(self._head or None)
                entries = []
                for record in chunk:
                    seq += 1
                    entry = chain_entry(seq, prev, record)
                    entries.append(orjson.dumps(entry))
                    prev = entry["hash"]
                head = orjson.dumps({"seq": seq, "hash": prev})
                appended, *found = await self._append(keys=[self.stream, self.head], args=[self._head, head, *entries])
                if appended:
                    self._head, done = head, done + len(chunk)
                else:  # another writer appended first (or the chain is new): chain after its head
                    self._head = found[0]
        except (RedisError, OSError) as exc:
            REDIS_ERRORS.inc()
            self.pending = batch[done:] + self.pending
            log.warning("audit append failed (%s); %d entries kept for retry", type(exc).__name__, len(self.pending))
            return False
        return True

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()


def _parse_head(raw: Any) -> tuple[int, str]:
    if raw is None:
        return 0, GENESIS
    head = orjson.loads(raw)
    return int(head["seq"]), str(head["hash"])


def read_entries(client: Any, prefix: str = "sg:") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every entry of the chain in stream order, with its stream id, a page at a time
    (``client``: a :class:`redis.Redis`)."""
    start = "-"
    while True:
        page = client.xrange(f"{prefix}audit", min=start, max="+", count=PAGE)
        for stream_id, fields in page:
            yield stream_id.decode(), orjson.loads(fields[b"entry"])
        if len(page) < PAGE:
            return
        start = "(" + page[-1][0].decode()


def verify(client: Any, prefix: str = "sg:") -> tuple[int, tuple[int, str] | None]:
    """Walk the chain: ``(entries read, first break or None)``."""
    count = 0

    def entries() -> Iterator[dict[str, Any]]:
        nonlocal count
        for _, entry in read_entries(client, prefix):
            count += 1
            yield entry

    raw_head = client.get(f"{prefix}audit:head")
    head = _parse_head(raw_head) if raw_head is not None else None
    found = find_break(entries(), head)
    return count, found


def export(client: Any, out: IO[bytes], prefix: str = "sg:") -> int:
    """Write the chain as JSON lines (each entry with its stream id); returns how many."""
    count = 0
    for stream_id, entry in read_entries(client, prefix):
        out.write(orjson.dumps({"id": stream_id, **entry}) + b"\n")
        count += 1
    return count
