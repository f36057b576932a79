"""Two trainers of one kind during a rebalance, on the real broker and Redis: the one that saves
second takes the other's version and reads its unsaved examples back from the broker (they are
not kept in memory), so each example is learned once."""

from __future__ import annotations

import uuid
from functools import partial

import pytest

from streams.app import build_app
from streams.contracts.learning import read_example_record
from streams.kafka_clients import producer
from streams.model_store import RedisModelStore
from streams.topics import ensure_topics
from streams.trainer import Trainer
from tests.test_agents import order_example

pytestmark = pytest.mark.integration


async def test_a_trainer_that_loses_the_race_reads_its_unsaved_examples_back_from_the_broker(settings, tmp_path,
                                                                                             caplog):
    run = uuid.uuid4().hex[:8]  # topics and model versions of this test's own
    own = settings.model_copy(update={"topic_prefix": f"trainer-race-{run}.", "data_dir": str(tmp_path)})
    await ensure_topics(own)
    kafka = producer(own.kafka_bootstrap)
    await kafka.start()
    try:  # 30 records of 10 order examples on the order examples' partition
        values = [b"[" + b",".join(order_example(10 * r + i, 1.0 + i % 5) for i in range(10)) + b"]" for r in range(30)]
        sent = [await (await kafka.send(own.topic("model-examples"), value=v, partition=0)) for v in values]
    finally:
        await kafka.stop()
    batches = [[(x, meta.offset) for x in read_example_record(v, 0)[0]] for v, meta in zip(values, sent, strict=True)]

    sg = build_app(own)
    make_models = sg.training.trainers["order"].make_models
    old_store, new_store = (RedisModelStore(own.redis_url, "order", prefix=f"race-{run}:") for _ in range(2))
    old_owner = Trainer(old_store, make_models, partial(sg.training.replay, "order"), kind="order")  # via the broker
    new_owner = Trainer(new_store, make_models)  # learns only what it is given
    try:
        await old_owner.learn([x for batch in batches[:20] for x in batch])  # examples 0-199, acked, unsaved
        await new_owner.learn([x for batch in batches[10:] for x in batch])  # 100-299: the partition moved
        assert await new_owner.checkpoint() == 200
        caplog.set_level("INFO", logger="streams.trainer")
        assert await old_owner.checkpoint() == 0  # lost: version 1 exists
        assert "order trainer replays 200 examples" in caplog.text  # records 0-19, from the broker
        models = old_owner.models
        assert models.version == 1 and models.order_examples == 300  # 100-299 from it, 0-99 read back
        assert await old_owner.checkpoint() == 200  # the 200 read back: 0-99 learned, 100-199 known
        saved = await new_store.load()  # its offset never goes back: version 1 covered record 29
        assert saved is not None and saved.version == 2 and saved.offset == sent[29].offset
    finally:
        await new_store.client.delete(new_store.key)
        for store in (old_store, new_store, *sg.model_stores.values()):
            await store.close()
