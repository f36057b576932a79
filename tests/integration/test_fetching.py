"""The worker's Kafka consumer as aiokafka starts it: the fetch settings Faust offers no option
for (set on private attributes through ``override``, see ``streams.batch_consumer``) reach
the fetcher, so an aiokafka upgrade that moved them would not pass silently."""

from __future__ import annotations

import pytest

from streams.app import build_app
from streams.batch_consumer import FETCH_MAX_WAIT_MS, FETCHER_WAKE_S, ConsumerThread

pytestmark = pytest.mark.integration


async def test_the_worker_fetcher_holds_fetches_briefly_and_looks_again_for_partitions_often(settings, tmp_path):
    sg = build_app(settings.model_copy(update={"data_dir": str(tmp_path)}))
    thread = sg.app.consumer._thread
    assert isinstance(thread, ConsumerThread)
    consumer = thread._create_worker_consumer(sg.app.transport)
    await consumer.start()
    try:
        fetcher = consumer._fetcher
        assert fetcher._fetch_max_wait_ms == FETCH_MAX_WAIT_MS  # Faust's: 1,500
        assert fetcher._fetcher_timeout == FETCHER_WAKE_S  # aiokafka's default (Faust sets none): 0.2
    finally:
        await consumer.stop()
