"""End to end on the real broker, Redis and worker process."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests import events as ev

pytestmark = pytest.mark.integration


async def test_exposure_after_a_known_sequence_equals_the_hand_computed_value(client):
    c = "C-SEQ"
    await client.onboard(ev.customer(c, limit=10_000.0))
    sequence = [
        ev.order(c, "SO-SEQ-1", 1_000.0, days=0),
        ev.order(c, "SO-SEQ-2", 2_500.0, days=0.5),
        ev.invoice(c, "INV-SEQ-1", "SO-SEQ-1", 1_000.0, days=1),
        ev.payment(c, "PAY-SEQ-1", "INV-SEQ-1", 400.0, days=2),
        ev.cancel(c, "SO-SEQ-2", days=3),
    ]
    await client.send(*sequence)
    snap = await client.settled(c, events_applied=1 + len(sequence))
    # SO-1 fully invoiced (no open order), SO-2 cancelled; receivable 1,000 - 400 = 600.
    assert (snap["open_orders"], snap["receivables"], snap["exposure"]) == (0.0, 600.0, 600.0)
    assert snap["credit_limit"] == 10_000.0 and snap["utilization"] == 0.06


async def test_redelivered_events_do_not_double_count(client):
    c = "C-DUP"
    placed = ev.order(c, "SO-DUP-1", 700.0, days=0)
    paid = ev.payment(c, "PAY-DUP-1", "INV-DUP-1", 200.0, days=2)
    # Sentinels follow each duplicate on the same topic and partition: once they are applied,
    # the duplicates before them have been consumed too.
    order_sentinel = ev.order(c, "SO-DUP-2", 1.0, days=0.1)
    ledger_sentinel = ev.payment(c, "PAY-DUP-2", "INV-DUP-1", 1.0, days=3)
    await client.onboard(ev.customer(c, limit=5_000.0))
    await client.send(placed, placed, order_sentinel,
                      ev.invoice(c, "INV-DUP-1", "SO-DUP-1", 700.0, days=1), paid, paid, ledger_sentinel)
    snap = await client.settled(c, events_applied=6)
    decisions = await client.collect("decisions", lambda rs: any(r["order_id"] == "SO-DUP-2" for r in rs))
    assert snap["open_orders"] == 1.0 and snap["receivables"] == 700.0 - 200.0 - 1.0
    assert len({r["decision_id"] for r in decisions if r["order_id"] == "SO-DUP-1"}) == 1


async def test_bad_message_lands_in_dead_letters_and_next_good_one_is_decided(client):
    c = "C-BAD"
    garbage = b'{"type": "order.placed", "truncated'
    await client.onboard(ev.customer(c))
    await client.send(("orders", c.encode(), garbage), ev.order(c, "SO-BAD-NEXT", 10.0))
    letters = await client.collect("dead-letters", lambda rs: any(r["_key"] == c.encode() for r in rs))
    [letter] = [r for r in letters if r["_key"] == c.encode()]
    assert letter["code"] == "not_json" and letter["source_topic"] == "orders"
    assert letter["partition"] >= 0 and letter["offset"] >= 0
    assert base64.b64decode(letter["raw_b64"]) == garbage
    await client.collect("decisions", lambda rs: any(r["order_id"] == "SO-BAD-NEXT" for r in rs))


async def test_every_order_in_a_burst_of_2000_gets_exactly_one_decision(client):
    customers = [f"C-BURST-{i:02d}" for i in range(50)]
    orders = [ev.order(customers[i % 50], f"SO-BURST-{i}", 10.0 + i % 7, days=1 + i / 10_000) for i in range(2000)]
    await client.onboard(*(ev.customer(c, limit=1e9) for c in customers))
    await client.send(*orders)
    wanted = {o["order_id"] for o in orders}

    def all_decided(records):
        return wanted <= {r["order_id"] for r in records}

    records = await client.collect("decisions", all_decided, timeout=120)
    ids_by_order = defaultdict(set)
    for r in records:
        if r["order_id"] in wanted:
            ids_by_order[r["order_id"]].add(r["decision_id"])
    assert len(ids_by_order) == 2000
    assert all(len(ids) == 1 for ids in ids_by_order.values())


async def test_a_replacement_worker_recovers_customer_state_from_the_changelog(client, worker):
    c = "C-RECOVER"
    await client.onboard(ev.customer(c, limit=2_000.0))
    await client.send(ev.order(c, "SO-REC-1", 1_500.0))
    assert (await client.settled(c, events_applied=2))["exposure"] == 1_500.0
    worker.stop()
    worker.start()  # fresh process, fresh data dir: state can only come from the changelog
    await client.send(ev.order(c, "SO-REC-2", 1_000.0, days=1))
    records = await client.collect("decisions", lambda rs: any(r["order_id"] == "SO-REC-2" for r in rs), timeout=120)
    [decision] = [r for r in records if r["order_id"] == "SO-REC-2"]
    assert decision["exposure_before"] == 1_500.0
    assert decision["outcome"] == "hold"  # 2,500 > 2,000; a worker that forgot SO-REC-1 would approve


def test_demo_command_prints_a_complete_summary(tmp_path):
    result = subprocess.run([sys.executable, "-m", "streams.cli", "demo", "--events", "600", "--json"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"orders", "decisions", "approve", "review", "hold", "reject", "dead_letters", "elapsed_s"} <= set(summary)
    assert summary["decisions"] == summary["orders"] > 100
    assert summary["approve"] + summary["review"] + summary["hold"] + summary["reject"] == summary["decisions"]
    assert summary["dead_letters"] == summary["bad_messages_sent"]


def test_ctrl_c_stops_the_demo_and_every_process_it_started(tmp_path):
    # as from a terminal: a test run started in the background inherits SIGINT ignored
    out = (tmp_path / "demo.out").open("w+")
    demo = subprocess.Popen([sys.executable, "-m", "streams.cli", "demo", "--rate", "200"], cwd=tmp_path,
                            stdout=out, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        children: list[int] = []
        while time.monotonic() < deadline and len(children) < 3:  # broker, redis, worker
            time.sleep(0.5)
            children = _children(demo.pid)
        assert len(children) == 3, f"demo started {children}"
        time.sleep(3)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=60) == 0, demo.stderr.read().decode()[-2000:] if demo.stderr else ""
        alive = {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in children
                 if Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)}
        assert alive == {}
        out.seek(0)
        assert "The embedded broker slows down as it runs" in out.read()  # said before the live table
    finally:
        demo.kill()  # a no-op when it has exited; its children die with it (parent-death signal)
        demo.wait()
        out.close()


def _children(pid: int) -> list[int]:
    return [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return "Z"


async def test_worker_serves_its_metrics_for_prometheus(client, worker):
    import urllib.request

    await client.onboard(ev.customer("C-METRICS"))
    await client.send(ev.order("C-METRICS", "SO-MET-1", 1.0))
    await client.collect("decisions", lambda rs: any(r["order_id"] == "SO-MET-1" for r in rs))
    response = urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/metrics", timeout=10)
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.read().decode()
    decided = sum(float(line.split()[-1]) for line in text.splitlines()
                  if line.startswith("salesguard_decisions_total{"))
    assert decided >= 1 and "salesguard_decision_latency_seconds_bucket" in text


async def test_the_demo_reads_the_latency_of_the_decisions_made_between_two_reads(client, worker):
    """The live table's latency row: the worker's histogram read twice, the decisions in between."""
    import aiohttp

    from streams.demo import latency_text, read_latency

    inf = float("inf")
    await client.onboard(ev.customer("C-LATENCY"))
    async with aiohttp.ClientSession() as http:
        before = await read_latency(http, worker.port)
        assert latency_text(before, before) == "no decisions"
        await client.send(ev.order("C-LATENCY", "SO-LAT-1", 1.0))
        await client.collect("decisions", lambda rs: any(r["order_id"] == "SO-LAT-1" for r in rs))
        deadline = time.monotonic() + 10  # counted once the decision's batch is written
        while (after := await read_latency(http, worker.port))[inf] == before.get(inf, 0.0):
            assert time.monotonic() < deadline, "the decision was never counted in the latency histogram"
            await asyncio.sleep(0.2)
    assert latency_text(after, before).startswith("p50 ≤ ")


async def test_generate_feeds_a_running_worker_through_configured_servers(client, settings, tmp_path):
    env = {**os.environ, **settings.as_environment()}
    command = [sys.executable, "-m", "streams.cli", "generate", "--events", "400", "--rate", "2000", "--seed", "11",
               "--bad-rate", "0"]
    result = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=120,
                                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    orders = int(result.stderr.split("(")[1].split(" orders")[0].replace(",", ""))
    assert orders > 50

    def of_this_run(records):
        return {r["decision_id"] for r in records if r["order_id"].startswith("SO-g11-")}

    records = await client.collect("decisions", lambda rs: len(of_this_run(rs)) >= orders, timeout=120)
    assert len(of_this_run(records)) == orders
