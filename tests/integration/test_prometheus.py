"""A real Prometheus (Debian's package, on a loopback port) scrapes a running worker and loads
the alert rules: the rules are healthy and the metrics the alerts use return data."""

import asyncio
import shutil
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from monitoring.dashboards import DASHBOARDS, queries
from streams.embedded import ChildService, free_port
from tests import events as ev
from tests.integration.conftest import TOKENS

PROMETHEUS = shutil.which("prometheus")
RULES = Path(__file__).resolve().parents[2] / "monitoring" / "prometheus" / "alerts.yml"
pytestmark = [pytest.mark.integration, pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (Debian: apt-get install prometheus; .ci/run installs it)")]


@pytest.fixture()
def prometheus(worker, tmp_path):
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "rule_files": [str(RULES)],
              "scrape_configs": [{"job_name": "salesguard",
                                  "static_configs": [{"targets": [f"127.0.0.1:{worker.port}"]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    server = ChildService("prometheus", [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                                         f"--storage.tsdb.path={tmp_path / 'data'}",
                                         f"--web.listen-address=127.0.0.1:{port}"], port, tmp_path / "prometheus.log")
    server.start(timeout=60)
    yield f"http://127.0.0.1:{port}"
    server.stop()


async def query(http: aiohttp.ClientSession, base: str, expr: str) -> list[dict]:
    async with http.get(f"{base}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", body
    return body["data"]["result"]


async def test_prometheus_scrapes_the_worker_and_evaluates_the_alert_rules(client, prometheus):
    await client.onboard(ev.customer("C-PROM1", limit=1000.0))
    await client.send(ev.order("C-PROM1", "SO-PROM1", 100.0, days=1))
    await client.collect("decisions", lambda rs: any(r["order_id"] == "SO-PROM1" for r in rs))
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 60
        while not await query(http, prometheus, 'sum(salesguard_decisions_total{job="salesguard"}) > 0'):
            assert time.monotonic() < deadline, "Prometheus never got a decision count from the worker"
            await asyncio.sleep(1)
        assert (await query(http, prometheus, 'up{job="salesguard"}'))[0]["value"][1] == "1"
        lag = await query(http, prometheus,
                          "sum(faust_topic_partition_end_offset - faust_topic_partition_offset_commited)")
        assert lag and float(lag[0]["value"][1]) >= 0
        latency = await query(http, prometheus, "sum(salesguard_decision_latency_seconds_count)")
        assert float(latency[0]["value"][1]) >= 1
        while True:  # every rule evaluated at least once
            async with http.get(f"{prometheus}/api/v1/rules") as response:
                groups = (await response.json())["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            if rules and all(rule["health"] != "unknown" for rule in rules):
                break
            assert time.monotonic() < deadline, "the alert rules were never evaluated"
            await asyncio.sleep(1)
        assert len(rules) == len(yaml.safe_load(RULES.read_text())["groups"][0]["rules"])
        assert {rule["health"] for rule in rules} == {"ok"}, [(r["name"], r.get("lastError")) for r in rules]


async def test_every_dashboard_query_returns_data(client, worker, prometheus):
    await client.onboard(ev.customer("C-PROM2", limit=1000.0))
    discounted = ev.order("C-PROM2", "SO-PROM3", 50.0, days=1)
    discounted["lines"][0].update(unit_price=100.0, discount=0.5)  # beyond the salesperson's authority
    await client.send(discounted, ev.order("C-PROM2", "SO-PROM4", 1200.0, days=1))  # over the limit: held
    desk = f"http://127.0.0.1:{worker.port}/desk/api"
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 60
        while True:  # release the hold through the desk, once it is in the queue
            async with http.post(f"{desk}/holds/SO-PROM4/release", json={"comment": "Guarantee received."},
                                 headers={"Authorization": f"Bearer {TOKENS['analyst']}"}) as response:
                if response.status == 202:
                    break
            assert time.monotonic() < deadline, "the hold never reached the desk"
            await asyncio.sleep(0.5)
        expressions = {(name, expr.replace("$__rate_interval", "1m"))
                       for name, build in DASHBOARDS.items() for expr in queries(build())}
        empty = set(expressions)
        while empty:
            empty = {(name, expr) for name, expr in empty if not await query(http, prometheus, expr)}
            assert time.monotonic() < deadline + 60, f"dashboard queries without data: {sorted(empty)}"
            await asyncio.sleep(2)
