"""A real worker's /metrics: our metrics with values that follow what happened, and Faust's own
(per-partition end and committed offsets, from which consumer lag is computed)."""

import asyncio
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import events as ev

pytestmark = pytest.mark.integration


async def scrape(port: int) -> dict[tuple[str, tuple], float]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        text = await response.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: dict, name: str, **labels) -> float:
    return sum(value for (n, lbls), value in samples.items()
               if n == name and all((k, v) in lbls for k, v in labels.items()))


async def test_metrics_follow_decisions_portfolio_and_offsets(client, worker, settings):
    port = worker.process.port
    before = await scrape(port)
    await client.onboard(ev.customer("C-MET1", limit=100.0))
    await client.send(ev.order("C-MET1", "SO-MET1", 500.0, days=1), ev.order("C-MET1", "SO-MET2", 10.0, days=1))
    await client.collect("decisions", lambda rs: {"SO-MET1", "SO-MET2"} <= {r["order_id"] for r in rs})
    deadline = time.monotonic() + 30
    while True:  # the portfolio gauges follow with the timer (every SALESGUARD_OVERDUE_REFRESH_S)
        after = await scrape(port)
        if total(after, "salesguard_customers") >= 1 and total(after, "salesguard_exposure") > 0:
            break
        assert time.monotonic() < deadline, "portfolio gauges never set"
        await asyncio.sleep(1)
    decided = total(after, "salesguard_decisions_total") - total(before, "salesguard_decisions_total")
    assert decided >= 2
    assert total(after, "salesguard_decisions_total", outcome="reject") >= 1  # 500 on a limit of 100
    assert total(after, "salesguard_events_consumed_total", topic="orders") >= 2
    assert total(after, "salesguard_decision_latency_seconds_count") >= decided
    assert total(after, "salesguard_customers_by_utilization") == total(after, "salesguard_customers")
    orders_topic = settings.topic("orders")
    assert total(after, "faust_topic_partition_end_offset", topic=orders_topic) >= 2
    assert any(name == "faust_topic_partition_offset_commited" for name, _ in after)
    assert total(after, "salesguard_rulebook_info") == 1 and total(after, "salesguard_models_info") == 1
