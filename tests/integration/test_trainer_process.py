"""``SALESGUARD_TRAINING=separate`` on the real stack: a worker that only scores and a
``salesguard trainer`` process. The trainer learns every example the worker publishes and saves
model versions, the worker decides with them, and the worker learns nothing itself."""

from __future__ import annotations

import aiohttp
import pytest

from streams.demo import worker_service
from streams.model_store import RedisModelStore
from tests import events as ev
from tests.integration.conftest import Client, Worker
from tests.integration.metrics_page import scrape, total
from tests.integration.streams_under_test import isolated, until

pytestmark = pytest.mark.integration

ORDERS = 40


async def test_a_trainer_process_learns_what_the_scoring_worker_publishes(settings, tmp_path):
    run = isolated(settings, "trainer", redis_db=9).model_copy(update={"training": "separate"})
    client = Client(run)
    worker = Worker(run, tmp_path)
    trainer = worker_service(run, tmp_path, "trainer", "trainer")
    stores = [RedisModelStore(run.redis_url or "", kind) for kind in ("order", "credit")]
    worker.start()
    trainer.start(timeout=60)
    try:
        await client.onboard(ev.customer("C-T1", limit=1e9), timeout=150)
        await client.send(*(ev.order("C-T1", f"SO-T{i}", 100.0 + i, days=1 + i / 100) for i in range(ORDERS)))
        await client.collect("decisions", lambda rs: len({r["order_id"] for r in rs}) >= ORDERS)

        async def learned() -> float:
            return total(await scrape(trainer.port), "salesguard_model_examples_total", kind="order")

        await until(lambda: learned_at_least(learned, ORDERS), f"the trainer to learn {ORDERS} order examples",
                    timeout=90)
        await until(lambda: saved(stores[0]), "an order model version in Redis", timeout=60)
        worker_page = await scrape(worker.port)
        assert total(worker_page, "salesguard_model_examples_published_total", kind="order") == ORDERS
        assert total(worker_page, "salesguard_model_examples_total") == 0  # the worker only scores
        assert await learned() == ORDERS  # each example once
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{trainer.port}/health") as response:
            health = await response.json()
        assert response.status == 200 and health["status"] == "ok" and health["lag"] == 0  # owns both partitions

        # the worker takes the saved version (its refresh timer) and decides the next order with it
        version = await stores[0].version()
        await until(lambda: worker_scores_with(worker, version), f"the worker to score with version {version}",
                    timeout=30)
        await client.send(ev.order("C-T1", "SO-T-LAST", 100.0, days=2))
        decisions = await client.collect("decisions", lambda rs: any(r["order_id"] == "SO-T-LAST" for r in rs))
        last = next(r for r in decisions if r["order_id"] == "SO-T-LAST")
        assert int(last["model_version"].removeprefix("models-").split(".")[0]) >= version
    finally:
        trainer.stop(timeout=20)
        worker.stop()
        for store in stores:
            await store.client.flushdb()
            await store.close()
        await client.redis.aclose()


async def learned_at_least(learned, minimum: float) -> bool:
    return await learned() >= minimum


async def saved(store: RedisModelStore) -> bool:
    return await store.version() > 0


async def worker_scores_with(worker: Worker, version: int) -> bool:
    return total(await scrape(worker.port), "salesguard_model_version", kind="order") >= version
