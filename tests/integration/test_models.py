"""Models on the real stack: delayed labels reach the credit trainer (from a late payment, and
from the timer for an invoice that is never paid), checkpoints land in Redis, and a restarted
worker scores with, and keeps training, the version it had. Its events lie after every
other test's, so the worker's event-time watermark is its own."""

from __future__ import annotations

import asyncio
import time

import pytest

from detectors.risk_models import RiskModels
from streams.app import build_app
from streams.model_store import RedisModelStore
from streams.trainer import RecentIds
from tests import events as ev

pytestmark = pytest.mark.integration


async def saved(settings, until, timeout: float = 60.0) -> tuple[RiskModels, RecentIds]:
    """The credit trainer's newest checkpoint in Redis once ``until(models, learned)`` holds."""
    store = RedisModelStore(settings.redis_url, "credit")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            checkpoint = await store.load()
            if checkpoint is not None:
                models, learned = RiskModels.from_bytes(checkpoint.models), RecentIds.from_bytes(checkpoint.learned)
                if until(models, learned):
                    return models, learned
            await asyncio.sleep(0.3)
    finally:
        await store.close()
    raise AssertionError("no checkpoint satisfied the condition in time")


def knows(learned: RecentIds, example_id: str) -> bool:
    return not RecentIds.from_bytes(learned.to_bytes()).add(example_id)


#: Event times of this test lie after every other test's (the simulated traffic runs for months):
#: the worker's event-time watermark, which the lateness timer uses, is then this test's own.
LATER = 1000


async def test_delayed_labels_reach_the_trainer_and_survive_a_restart(client, worker, settings):
    await client.onboard(ev.customer("C-LATE1", limit=5000.0), ev.customer("C-LATE2", limit=5000.0))
    await client.send(ev.order("C-LATE1", "SO-L1", 800.0, days=LATER + 1, event_id="e-SO-L1"))
    await client.settled("C-LATE1", events_applied=2)  # the order counts when its invoice is issued
    await client.send(
        ev.invoice("C-LATE1", "INV-L1", "SO-L1", 800.0, days=LATER + 2, due_in_days=10),
        ev.invoice("C-LATE2", "INV-L2", None, 300.0, days=LATER + 2, due_in_days=10),
    )
    await client.settled("C-LATE1", events_applied=3)
    await client.settled("C-LATE2", events_applied=2)
    # Paid 50 days after due: labelled late when the payment arrives.
    await client.send(ev.payment("C-LATE1", "P-L1", "INV-L1", 800.0, days=LATER + 62))
    # INV-L2 is never paid; a later event elsewhere moves event time on and the timer labels it.
    wanted = {"credit:C-LATE1:INV-L1", "credit:C-LATE2:INV-L2"}
    examples = await client.collect("model-examples", lambda rs: wanted <= {r["example_id"] for r in rs}, timeout=90)
    credit = {r["example_id"]: r for r in examples if r["kind"] == "credit"}
    assert {r["_partition"] for r in examples if r["kind"] == "credit"} == {1}
    assert {r["_partition"] for r in examples if r["kind"] == "order"} == {0}
    paid, unpaid = credit["credit:C-LATE1:INV-L1"], credit["credit:C-LATE2:INV-L2"]
    assert paid["late"] is True and 49 < paid["days_late"] < 51
    assert paid["features"]["utilization"] == 0.16  # as when the invoice was issued: 800 / 5000
    assert unpaid["late"] is True and unpaid["days_late"] > settings.late_payment_days
    assert "order:e-SO-L1" in {r["example_id"] for r in examples if r["kind"] == "order"}

    before, learned = await saved(settings, lambda m, ids: knows(ids, "credit:C-LATE2:INV-L2")
                                  and knows(ids, "credit:C-LATE1:INV-L1"))
    assert before.credit_examples >= 2 and before.late_labels >= 2 and before.version >= 1

    worker.stop()
    worker.start()
    # the restarted worker's first batch waits for its group to rebalance and for the rulebooks
    # topic: on a busy machine that took more than the usual minute once
    await client.onboard(ev.customer("C-LATE3", limit=5000.0), timeout=150)
    await client.send(ev.order("C-LATE3", "SO-L3", 100.0, days=LATER + 70),
                      ev.invoice("C-LATE3", "INV-L3", "SO-L3", 100.0, days=LATER + 70, due_in_days=0),
                      ev.payment("C-LATE3", "P-L3", "INV-L3", 100.0, days=LATER + 71))
    decisions = await client.collect("decisions", lambda rs: any(r["order_id"] == "SO-L3" for r in rs))
    decision = next(r for r in decisions if r["order_id"] == "SO-L3")
    restored_version = int(decision["model_version"].rsplit(".", 1)[1])  # models-<order>.<credit>
    assert restored_version >= before.version  # scored with the saved models, not fresh ones

    after, _ = await saved(settings, lambda m, ids: knows(ids, "credit:C-LATE3:INV-L3"))
    assert after.version > before.version and after.credit_examples > before.credit_examples
    # Nothing learned twice, though the restarted worker re-sent labels it had sent before
    # (timer labels are not persisted): the trainer learned each distinct invoice exactly once.
    for _ in range(5):
        credit_ids = {r["example_id"] for r in await client.collect("model-examples", quiet_for(3.0))
                      if r["kind"] == "credit"}
        after, _ = await saved(settings, lambda m, ids, w=credit_ids: all(knows(ids, i) for i in w))
        if after.credit_examples == len(credit_ids):
            break
    assert after.credit_examples == len(credit_ids)


def quiet_for(seconds: float):
    """A ``collect`` condition: no new record for ``seconds``."""
    seen = {"count": -1, "since": time.monotonic()}

    def until(records: list) -> bool:
        if len(records) != seen["count"]:
            seen["count"], seen["since"] = len(records), time.monotonic()
        return time.monotonic() - seen["since"] >= seconds

    return until


async def test_the_trainer_can_replay_examples_it_acked_but_never_checkpointed(client, settings, tmp_path):
    def orders(records: list[dict]) -> list[dict]:
        return [r for r in records if r["_partition"] == 0]

    examples = orders(await client.collect("model-examples", lambda rs: len({r["_offset"] for r in orders(rs)}) >= 3))
    sg = build_app(settings.model_copy(update={"data_dir": str(tmp_path)}))
    replayed = await sg.training.replay("order", 1, 3)  # the examples of records 1 and 2, with their offsets
    expected = [(r["example_id"], r["_offset"]) for r in examples if 1 <= r["_offset"] < 3]
    assert [(x.example_id, offset) for x, offset in replayed] == expected and {o for _, o in expected} == {1, 2}
