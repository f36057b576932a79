"""Commands batched into script calls against a real Redis server: cut into several calls, they
run in order with their own arguments."""

import redis

from streams.redis_commands import RUN_COMMANDS, CommandBatch, run


async def test_a_batch_cut_into_calls_runs_every_command_in_order(redis_server):
    client = redis.asyncio.Redis(port=redis_server.port)
    batch = CommandBatch()
    batch.add("SET", "a", b"1")
    batch.add("RPUSH", "list", "x", "y", "z")
    batch.add("DEL", "a")
    batch.add("SET", "b", 2.5, "EX", 60)
    batch.add("LTRIM", "list", 1, -1)
    batch.add("ZADD", "holds", 3, "SO-1", 1.5, "SO-2")
    assert [len(keys) for keys, _ in batch.calls(size=4)] == [4, 2]
    assert [args[:2] for _, args in batch.calls(size=4)] == [["SET", 1], ["LTRIM", 2]]

    script = client.register_script(RUN_COMMANDS)
    for keys, args in batch.calls(size=2):  # three calls
        await script(keys=keys, args=args)
    reader = redis.Redis(port=redis_server.port)
    assert reader.get("a") is None and reader.get("b") == b"2.5" and 0 < reader.ttl("b") <= 60
    assert reader.lrange("list", 0, -1) == [b"y", b"z"]
    assert reader.zrange("holds", 0, -1, withscores=True) == [(b"SO-2", 1.5), (b"SO-1", 3.0)]

    reader.flushdb()
    await run(script, batch)  # the default size: one call
    assert reader.lrange("list", 0, -1) == [b"y", b"z"] and reader.get("b") == b"2.5"
    await client.aclose()
