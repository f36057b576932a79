"""A real worker's /metrics: our metrics with values that follow what happened, and Faust's own
(per-partition end and committed offsets, from which consumer lag is computed)."""

import asyncio
import time

import aiohttp
import pytest

from tests import events as ev
from tests.integration.metrics_page import scrape, total

pytestmark = pytest.mark.integration


async def test_metrics_follow_decisions_portfolio_and_offsets(client, worker, settings):
    port = worker.port
    before, started = await scrape(port), time.time()
    await client.onboard(ev.customer("C-MET1", limit=100.0))
    await client.send(ev.order("C-MET1", "SO-MET1", 500.0, days=1), ev.order("C-MET1", "SO-MET2", 10.0, days=1))
    await client.collect("decisions", lambda rs: {"SO-MET1", "SO-MET2"} <= {r["order_id"] for r in rs})
    deadline = time.monotonic() + 30
    while True:  # the portfolio gauges follow with the timer (every SALESGUARD_OVERDUE_REFRESH_S), a
        # batch's counters once its state writes are acknowledged (after its decisions were published)
        after = await scrape(port)
        learned = total(after, "salesguard_last_batch_timestamp_seconds", stream="examples") > started
        decided = total(after, "salesguard_decisions_total") - total(before, "salesguard_decisions_total")
        if total(after, "salesguard_customers") >= 1 and total(after, "salesguard_exposure") > 0 and learned \
                and decided >= 2:
            break
        assert time.monotonic() < deadline, ("portfolio gauges never set, the orders' examples never learned, "
                                             f"or {decided:.0f} of 2 decisions counted")
        await asyncio.sleep(1)
    assert total(after, "salesguard_decisions_total", outcome="reject") >= 1  # 500 on a limit of 100
    assert total(after, "salesguard_events_consumed_total", topic="orders") >= 2
    assert total(after, "salesguard_decision_latency_seconds_count") >= decided
    assert started < total(after, "salesguard_last_batch_timestamp_seconds", stream="input") < time.time()
    assert total(after, "salesguard_customers_by_utilization") == total(after, "salesguard_customers")
    orders_topic = settings.topic("orders")
    assert total(after, "faust_topic_partition_end_offset", topic=orders_topic) >= 2
    assert any(name == "faust_topic_partition_offset_commited" for name, _ in after)
    assert total(after, "salesguard_rulebook_info") == 1 and total(after, "salesguard_models_info") == 1


async def test_health_of_a_worker_that_has_read_its_input(client, worker):
    """The liveness probe's view: ok, with the lag from the consumer's own offsets; the same in
    the metrics."""
    await client.send(ev.order("C-MET1", "SO-HEALTH", 1.0, days=2))
    await client.collect("decisions", lambda rs: any(r["order_id"] == "SO-HEALTH" for r in rs))
    url = f"http://127.0.0.1:{worker.port}/health"
    deadline = time.monotonic() + 30
    while True:  # the decision is out; its offsets are read once the batch is handed over
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            status, body = response.status, await response.json()
        if body["lag"] == 0:
            break
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.5)
    assert status == 200 and body["status"] == "ok" and body["seconds_since_progress"] < 60
    samples = await scrape(worker.port)
    assert total(samples, "salesguard_consumer_stalled") == 0
    assert ("salesguard_input_lag_messages", ()) in samples
