"""Hot reload on the embedded stack: a rulebook deployed while orders flow reaches the worker
between two batches (every decision is consistent with the version it records), a broken one
never replaces the running one, and a rollback returns to the previous one."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from rules import DEFAULT_RULEBOOK
from streams import rulebook_control
from streams.contracts import RulebookApplied
from streams.kafka_clients import producer
from tests import events as ev
from tests import rulebooks

pytestmark = pytest.mark.integration

#: The default rulebook plus a rule that reviews every order: its hits show which version decided.
MARKED = rulebooks.default_data()
MARKED["name"] = "marked"
MARKED["rules"].append({"id": "EVERY_ORDER", "when": "order_amount > 0.0", "action": "review",
                        "message": "Marked rulebook."})


def decided(records, order_ids):
    return {r["order_id"]: r for r in records if r["order_id"] in order_ids}


async def test_a_rulebook_applied_while_orders_flow_switches_between_batches(client, settings):
    import yaml

    await client.onboard(ev.customer("C-RB", limit=1e9))
    sent: list[str] = []
    switched = asyncio.Event()

    async def flow() -> None:  # orders keep coming until decisions by the new rulebook are seen
        i = 0
        while not switched.is_set() and i < 5000:
            batch = [ev.order("C-RB", f"SO-RB-{i + k}", 10.0, days=2 + (i + k) / 10_000) for k in range(10)]
            await client.send(*batch)
            sent.extend(o["order_id"] for o in batch)
            i += 10
            await asyncio.sleep(0.05)

    sending = asyncio.create_task(flow())
    await asyncio.sleep(0.5)
    marked = await rulebook_control.publish(settings, yaml.safe_dump(MARKED))
    new_version = f"{marked.sequence}:marked@"
    await client.collect("decisions", lambda rs: any(r["rulebook_version"].startswith(new_version) for r in rs))
    switched.set()
    await sending
    ids = set(sent)
    records = await client.collect("decisions", lambda rs: len(decided(rs, ids)) == len(ids), timeout=120)
    by_version: dict[str, int] = {}
    for decision in decided(records, ids).values():
        version = decision["rulebook_version"]
        by_version[version] = by_version.get(version, 0) + 1
        marked_hit = any(reason["code"] == "EVERY_ORDER" for reason in decision["reasons"])
        assert marked_hit == version.startswith(new_version), decision
    assert len(by_version) == 2, by_version  # orders decided before and after the switch

    # a broken deployment (published around the CLI's validation) is refused by the worker
    kafka = producer(settings.kafka_bootstrap or "")
    await kafka.start()
    broken = RulebookApplied(sequence=marked.sequence + 1, content="name: x\nrules: []\n",
                                              applied_at=marked.applied_at)
    await kafka.send_and_wait(settings.topic("rulebooks"), value=orjson.dumps(broken.model_dump(mode="json")))
    await kafka.stop()
    await asyncio.sleep(2)
    await client.send(ev.order("C-RB", "SO-RB-AFTER-BROKEN", 10.0, days=3))
    after = await client.collect("decisions", lambda rs: any(r["order_id"] == "SO-RB-AFTER-BROKEN" for r in rs))
    assert next(r for r in after if r["order_id"] == "SO-RB-AFTER-BROKEN")["rulebook_version"].startswith(
        f"{marked.sequence}:marked@")

    # rollback: back to what ran before the marked one (applied again: the default)
    history = await rulebook_control.history(settings)
    target = rulebook_control.to_restore(history)
    if target is None:  # nothing was applied before the marked rulebook in this session
        restored = await rulebook_control.publish(settings, DEFAULT_RULEBOOK.read_text())
    else:
        restored = await rulebook_control.publish(settings, target.content, restores=target.sequence)
    await asyncio.sleep(2)
    await client.send(ev.order("C-RB", "SO-RB-AFTER-ROLLBACK", 10.0, days=4))
    last = await client.collect("decisions", lambda rs: any(r["order_id"] == "SO-RB-AFTER-ROLLBACK" for r in rs))
    decision = next(r for r in last if r["order_id"] == "SO-RB-AFTER-ROLLBACK")
    assert decision["rulebook_version"].startswith(f"{restored.sequence}:default@")
    assert all(reason["code"] != "EVERY_ORDER" for reason in decision["reasons"])

    # emergency mode in one action: the running rulebook with its emergency section on, then off
    running = rulebook_control.current(await rulebook_control.history(settings))
    assert running is not None and running.sequence == restored.sequence
    await rulebook_control.publish(settings, rulebook_control.with_emergency(running.content, True, [{"country": "DE"}],
                                                                             None))
    await asyncio.sleep(2)
    await client.send(ev.order("C-RB", "SO-RB-EMERGENCY", 10.0, days=5))
    held = await client.collect("decisions", lambda rs: any(r["order_id"] == "SO-RB-EMERGENCY" for r in rs))
    decision = next(r for r in held if r["order_id"] == "SO-RB-EMERGENCY")
    assert decision["outcome"] == "hold" and decision["reasons"][0]["code"] == "EMERGENCY_SEGMENT_HOLD"
    await rulebook_control.publish(settings, rulebook_control.with_emergency(running.content, False, [], None))
