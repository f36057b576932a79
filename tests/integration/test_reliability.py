"""Crashes and rebalances with real worker processes on the real broker and Redis: nothing lost,
nothing counted twice.

The traffic (50,000 generated events) goes out in three phases so that what the workers must end
with does not depend on how their fetches interleave the topics: the customers' master data;
then their orders (a customer's orders sit on one partition and are decided in order); then,
once every order is decided, the ledger (invoices, payments, credit notes, write-offs), which
moves exposure but decides nothing. The models never score (their minimums are out of reach).
An in-process pipeline replays the same phases once, cleanly: its decisions, dead letters and
final customer states are what the workers must produce, whatever crashed or moved meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from streams.bench import load_backlog
from streams.generator import SalesSimulator
from streams.settings import Settings
from streams.snapshot import risk_snapshot
from tests.integration.conftest import Worker
from tests.integration.streams_under_test import (
    assigned,
    at_least,
    changelog_versions,
    consumed,
    counter,
    following,
    group_offsets,
    isolated,
    latest_states,
    lost_events,
    replay,
    until,
)

pytestmark = pytest.mark.integration

EVENTS, CUSTOMERS = 50_000, 1_000


@pytest.mark.timeout(900)
async def test_a_worker_killed_mid_stream_and_one_joining_and_leaving_lose_nothing_and_count_nothing_twice(
        settings: Settings, tmp_path: Path):
    # The simulated clock runs 240 days in under a minute: a redelivery of a few seconds spans weeks
    # of event time. Retention is set above the traffic's span so that every redelivered event is
    # still recognised (at real speed a redelivery spans seconds of the 30 days).
    run = isolated(settings, "reliability", redis_db=5).model_copy(update={"retention_days": 3650})
    messages = list(SalesSimulator(seed=11, total_events=EVENTS, customers=CUSTOMERS, run_id="rel", bad_rate=0.005))
    customers, orders, ledger = ([m for m in messages if m.topic == t] for t in ("customers", "orders", "ledger"))
    ref = await asyncio.to_thread(replay, run, [customers, orders, ledger])
    assert len(ref.decisions) > 10_000 and ref.dead_letters >= sum(not m.is_valid for m in messages) > 100

    decided: dict[str, list[str]] = defaultdict(list)  # source event id -> decision id of every copy
    outcomes: dict[str, str] = {}
    reasons: dict[str, list[str]] = {}  # source event id -> reason codes of its last copy
    exposures: dict[str, tuple[float, float | None]] = {}  # source event id -> exposure before, limit
    phases: dict[str, float] = {"master data": time.time()}  # when each phase began
    copies_in: dict[str, str] = {}  # source event id -> the phase its last redelivered copy came in
    dead: dict[tuple[str, int, int], dict] = {}  # by source topic, partition, offset

    def on_decision(record: dict) -> None:
        source = record["source_event_id"]
        if source in decided:
            copies_in[source] = next(reversed(phases))
        decided[source].append(record["decision_id"])
        outcomes[source], reasons[source] = record["outcome"], [reason["code"] for reason in record["reasons"]]
        exposures[source] = record["exposure_before"], record["credit_limit"]

    workers = [Worker(run, tmp_path / f"worker-{i}") for i in range(3)]
    for w in workers:
        w.run_dir.mkdir()
    mirror = aioredis.from_url(run.redis_url or "")
    try:
        await load_backlog(run, customers)
        workers[0].start()
        workers[1].start()
        async with following(run, "decisions", on_decision), following(
                run, "dead-letters", lambda r: dead.setdefault((r["source_topic"], r["partition"], r["offset"]), r)):
            await until(lambda: at_least(consumed(workers[:2], "customers"), len(customers)), "master data")

            # crash: SIGKILL a worker once a third of the orders are decided, start a new one
            await load_backlog(run, orders)
            phases["orders"] = time.time()
            await until(lambda: len(decided) >= len(ref.decisions) / 3, "a third of the decisions")
            workers[0].kill()
            phases["first worker killed"] = time.time()
            killed_at, decided_at_kill = time.monotonic(), len(decided)
            workers[0].start()

            async def restarted_worker_deciding() -> bool:
                # the survivor may decide every order before the restarted worker owns partitions
                return await assigned(workers[0]) and (decided.keys() >= ref.decisions.keys() or await at_least(
                    counter(workers[:1], "salesguard_decisions_total"), 1))

            await until(restarted_worker_deciding, "the restarted worker's partitions and its first decision")
            crash_recovery_s = time.monotonic() - killed_at
            try:
                await until(lambda: decided.keys() >= ref.decisions.keys(), "every order decided")
            except AssertionError as failure:
                undecided = ref.decisions.keys() - decided.keys()
                raise AssertionError(
                    f"{failure}: {len(undecided)} orders of "
                    f"{len({ref.decisions[source].customer_id for source in undecided})} customers "
                    f"undecided; the orders topic's partitions (committed by the workers, end): "
                    f"{await group_offsets(run, 'orders')}; worker logs in {tmp_path}") from None

            # rebalance: a third worker joins, takes partitions while the ledger flows, then leaves
            phases["third worker started"] = time.time()
            workers[2].start()
            await until(lambda: assigned(workers[2]), "the third worker's partitions", timeout=60)
            phases["ledger"] = time.time()
            await load_backlog(run, ledger)
            await until(lambda: consumed(workers[2:], "ledger"), "the third worker's first ledger events")
            phases["third worker stopped"] = time.time()
            workers[2].stop()
            left_at = time.monotonic()

            behind: dict[str, tuple[int | None, int]] = {}

            async def mirrored() -> bool:
                snapshots = await mirror.mget([f"sg:customer:{c}" for c in ref.states])
                behind.clear()
                behind.update((customer, (orjson.loads(s)["events_applied"] if s else None, state.events_applied))
                              for s, (customer, state) in zip(snapshots, ref.states.items(), strict=True)
                              if s is None or orjson.loads(s)["events_applied"] != state.events_applied)
                return not behind

            try:
                await until(mirrored, lambda: f"every customer in Redis as the clean run left it: {len(behind)} "
                            f"differ (mirrored, expected events applied), e.g. {list(behind.items())[:5]}")
            except AssertionError as failure:
                logged = await changelog_versions(run, set(list(behind)[:5]))
                finals = await latest_states(run, set(list(behind)[:3]))
                lost = {customer: lost_events(run, [customers, orders, ledger], customer, state)
                        for customer, state in finals.items()}
                raise AssertionError(f"{failure}; their changelog records (events applied@offset, produced at UTC): "
                                     f"{logged}; the events whose loss explains their last records: {lost}; "
                                     f"the ledger topic's partitions (committed by the workers, end): "
                                     f"{await group_offsets(run, 'ledger')}; worker logs in {tmp_path}") from None
            rebalance_drain_s = time.monotonic() - left_at
            await until(lambda: len(dead) >= ref.dead_letters, "every dead letter", timeout=30)
    finally:
        for w in workers:
            w.stop()
        await mirror.aclose()

    # every order request: decided, once (copies carry the same id), as the clean run decided it
    assert decided.keys() == ref.decisions.keys()
    assert {source: set(ids) for source, ids in decided.items()} == {
        source: {d.decision_id} for source, d in ref.decisions.items()}
    differing = {source: (outcomes[source], reasons[source], exposures[source], d.outcome.value,
                          [r.code for r in d.reasons], (d.exposure_before, d.credit_limit), copies_in.get(source))
                 for source, d in ref.decisions.items() if outcomes[source] != d.outcome.value}
    if differing:
        began = ", ".join(f"{phase} {datetime.fromtimestamp(at, UTC):%H:%M:%S}" for phase, at in phases.items())
        first = sorted({ref.decisions[source].customer_id for source in differing})[:3]
        raise AssertionError(
            f"{len(differing)} decisions differ from the clean run's (the workers' last copy: outcome, reasons, "
            f"(exposure before, credit limit); the clean run's; the phase of the redelivered copy, None: none), e.g. "
            f"{list(differing.items())[:8]}; phases began (UTC): {began}; changelog records of customers "
            f"{first} (events applied@offset, produced at UTC): {await changelog_versions(run, set(first))} (the "
            f"workers' rebalance steps are in the report below; worker logs in {tmp_path})")
    # every bad message dead-lettered, once per message
    unexpected = Counter(letter["raw_b64"] for letter in dead.values()) - ref.dead_letter_payloads
    assert len(dead) == ref.dead_letters, [(key, letter["code"], letter["reason"][:100])
                                           for key, letter in dead.items() if letter["raw_b64"] in unexpected][:5]
    # every customer's exposure (and every event applied once): as computed by the clean run
    client = aioredis.from_url(run.redis_url or "")
    try:
        values = await client.mget([f"sg:customer:{c}" for c in ref.states])
    finally:
        await client.aclose()
    missing = [customer for customer, value in zip(ref.states, values, strict=True) if value is None]
    assert not missing, f"no snapshot in Redis for {len(missing)} customers, e.g. {missing[:5]}"
    snapshots = [orjson.loads(value) for value in values if value is not None]
    as_of = max(state.last_event_time for state in ref.states.values())
    lost_or_double = {}
    for snapshot, (customer, state) in zip(snapshots, ref.states.items(), strict=True):
        expected = risk_snapshot(state, as_of, run.base_currency)
        if (snapshot["exposure"], snapshot["events_applied"]) != (expected["exposure"], expected["events_applied"]):
            lost_or_double[customer] = (snapshot["exposure"], expected["exposure"])
    assert lost_or_double == {}
    copies = sum(len(ids) for ids in decided.values()) - len(decided)
    print(f"\nreliability: {len(messages)} events, {len(ref.decisions)} decisions, {len(dead)} dead letters, "
          f"{copies} redelivered decision copies; decided at SIGKILL {decided_at_kill}; "
          f"crash recovery {crash_recovery_s:.1f} s; drained {rebalance_drain_s:.1f} s after the third worker left")
