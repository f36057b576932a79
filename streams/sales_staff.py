"""Per-salesperson signals for the desk: how often a salesperson's orders are held, how often
the desk releases (overrides) those holds, discounts beyond authority, anomalous orders — where
sales staff need risk training.

Counted in Redis per UTC day as *sets of ids* (``sg:sales:<day>:<salesperson>:<signal>``), so a
decision redelivered after a crash counts once; kept for :data:`RETENTION_DAYS`.

>>> from datetime import date
>>> rates({"decisions": 40, "holds": 10, "releases": 4, "discount_exceptions": 2, "anomalies": 1})["hold_rate"]
0.25
>>> window_days(date(2026, 3, 2), 3)
['2026-03-02', '2026-03-01', '2026-02-28']
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from streams.contracts import Decision, HoldResolved
from streams.redis_commands import MAX_ARGS, CommandBatch

SIGNALS = ("decisions", "holds", "releases", "discount_exceptions", "anomalies")
#: Reason codes that count as a discount beyond the salesperson's authority.
DISCOUNT_EXCEPTION_CODES = frozenset({"DISCOUNT_BEYOND_AUTHORITY"})
#: An order is anomalous for this view when its anomaly score is at least this.
ANOMALY_FLAG = 0.99
RETENTION_DAYS = 90


def _key(prefix: str, day: str, salesperson: str, signal: str) -> str:
    return f"{prefix}sales:{day}:{salesperson}:{signal}"


def flags(decision: Decision) -> list[str]:
    """The signals beyond ``decisions`` that a decision counts towards: ``holds`` (held or
    rejected), ``discount_exceptions``, ``anomalies``."""
    found = ["holds"] if decision.outcome.stops_order else []
    if any(reason.code in DISCOUNT_EXCEPTION_CODES for reason in decision.reasons):
        found.append("discount_exceptions")
    if decision.scores.get("anomaly", 0.0) >= ANOMALY_FLAG:
        found.append("anomalies")
    return found


def record(commands: CommandBatch, prefix: str, decisions: Iterable[Decision],
           resolutions: Iterable[HoldResolved]) -> None:
    """Add to ``commands`` the marks of a batch's decisions and releases."""
    marks: list[tuple[str, str, str, str]] = []  # (day, salesperson, signal, id)
    for d in decisions:
        day = d.decided_at.date().isoformat()
        marks += [(day, d.salesperson_id, signal, d.decision_id) for signal in ["decisions", *flags(d)]]
    for r in resolutions:
        if r.type == "hold.released" and r.salesperson_id:
            marks.append((r.resolved_at.date().isoformat(), r.salesperson_id, "releases", r.hold_id))
    members: dict[str, set[str]] = {}  # one SADD and one EXPIRE per key
    for day, salesperson, signal, member in marks:
        members.setdefault(f"{prefix}salespeople:{day}", set()).add(salesperson)
        members.setdefault(_key(prefix, day, salesperson, signal), set()).add(member)
    ttl = RETENTION_DAYS * 86_400
    for key, values in members.items():
        listed = list(values)
        for start in range(0, len(listed), MAX_ARGS):
            commands.add("SADD", key, *listed[start:start + MAX_ARGS])
        commands.add("EXPIRE", key, ttl)


def window_days(today: date, days: int) -> list[str]:
    """The UTC days of a window ending today, newest first."""
    return [(today - timedelta(days=i)).isoformat() for i in range(days)]


def rates(counts: dict[str, int]) -> dict[str, Any]:
    """Counts with their rates: holds per decision, releases per hold, exceptions and
    anomalies per decision (None when there is nothing to divide by)."""
    def share(part: str, whole: str) -> float | None:
        return round(counts[part] / counts[whole], 4) if counts[whole] else None
    return {**counts, "hold_rate": share("holds", "decisions"), "override_rate": share("releases", "holds"),
            "discount_exception_rate": share("discount_exceptions", "decisions"),
            "anomaly_rate": share("anomalies", "decisions")}


async def salesperson_view(client: Any, prefix: str, today: date, days: int) -> list[dict[str, Any]]:
    """Every salesperson active in the window with counts and rates, highest hold rate first
    (``client``: a ``redis.asyncio.Redis``)."""
    window = window_days(today, days)
    pipe = client.pipeline(transaction=False)
    for day in window:
        pipe.smembers(f"{prefix}salespeople:{day}")
    active = await pipe.execute()
    pairs = [(day, member.decode()) for day, members in zip(window, active, strict=True) for member in members]
    pipe = client.pipeline(transaction=False)
    for day, salesperson in pairs:
        for signal in SIGNALS:
            pipe.scard(_key(prefix, day, salesperson, signal))
    sizes = iter(await pipe.execute())
    totals: dict[str, dict[str, int]] = {}
    for _, salesperson in pairs:
        counts = totals.setdefault(salesperson, dict.fromkeys(SIGNALS, 0))
        for signal in SIGNALS:
            counts[signal] += next(sizes)
    view = [{"salesperson_id": salesperson, **rates(counts)} for salesperson, counts in totals.items()]
    return sorted(view, key=lambda row: (-(row["hold_rate"] or 0.0), row["salesperson_id"]))
