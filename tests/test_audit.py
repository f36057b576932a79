"""The audit trail against a real Redis server: two writers keep one chain; an altered, a
missing or a removed last entry is found at that entry; an outage loses nothing."""

import asyncio

import orjson
import pytest
import redis
from typer.testing import CliRunner

from streams.audit import AuditTrail, chain_entry, export, read_entries, verify
from streams.cli import cli
from streams.embedded import ChildService, free_port, redis_command


@pytest.fixture()
def redis_server(tmp_path):
    port = free_port()
    server = ChildService("redis", redis_command(port, tmp_path), port, tmp_path / "redis.log")
    server.start()
    yield server
    server.stop()


def records(who: str, n: int) -> list[dict]:
    return [{"kind": "desk", "actor": who, "n": i} for i in range(n)]


async def fill(url: str) -> None:
    a, b = AuditTrail(url), AuditTrail(url)
    await asyncio.gather(*[trail.append(records(name, 5)) for _ in range(6) for trail, name in ((a, "a"), (b, "b"))])
    await a.close()
    await b.close()


def rewrite(client: redis.Redis, change) -> None:
    """Rewrite the stream with ``change(entries)`` applied (what someone with Redis access could do)."""
    entries = [orjson.loads(fields[b"entry"]) for _, fields in client.xrange("sg:audit")]
    client.delete("sg:audit")
    for entry in change(entries):
        client.xadd("sg:audit", {"entry": orjson.dumps(entry)})


async def test_two_writers_keep_one_intact_chain_and_export_writes_it(redis_server, tmp_path):
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    await fill(url)
    client = redis.Redis(port=redis_server.port)
    assert verify(client) == (60, None)
    with (tmp_path / "audit.jsonl").open("wb") as out:
        assert export(client, out) == 60
    lines = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, 61))
    assert sorted((r["record"]["actor"], r["record"]["n"]) for r in lines) == sorted(
        [(name, i) for name in "ab" for _ in range(6) for i in range(5)])


async def test_an_altered_entry_is_found_at_that_entry(redis_server):
    await fill(f"redis://127.0.0.1:{redis_server.port}/0")
    client = redis.Redis(port=redis_server.port)

    def alter(entries):
        entries[16]["record"]["actor"] = "mallory"  # entry 17
        return entries
    rewrite(client, alter)
    assert verify(client)[1] == (17, "entry 17 was altered: its content does not match its hash")


async def test_a_recomputed_hash_is_found_at_the_next_entry(redis_server):
    await fill(f"redis://127.0.0.1:{redis_server.port}/0")
    client = redis.Redis(port=redis_server.port)

    def forge(entries):
        entries[16] = chain_entry(17, entries[16]["prev"], {**entries[16]["record"], "actor": "mallory"})
        return entries
    rewrite(client, forge)
    assert verify(client)[1] == (18, "entry 18 does not follow entry 17: entry 17 was altered or replaced")


async def test_missing_entries_are_found_in_the_middle_and_at_the_end(redis_server):
    await fill(f"redis://127.0.0.1:{redis_server.port}/0")
    client = redis.Redis(port=redis_server.port)
    ids = [stream_id for stream_id, _ in client.xrange("sg:audit")]
    client.xdel("sg:audit", ids[-1])
    assert verify(client)[1] == (60, "entries 60 to 60 are missing (the head records entry 60)")
    client.xdel("sg:audit", ids[29])
    assert verify(client)[1] == (30, "entry 30 is missing (the next entry found is 31)")


async def test_entries_wait_while_redis_is_down_and_arrive_in_order(redis_server):
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    trail = AuditTrail(url)
    assert await trail.append(records("a", 3))
    redis_server.stop()
    assert not await trail.append(records("b", 2))
    redis_server.start()  # an empty server: the chain starts again, with the kept entries after it
    assert await trail.append(records("c", 1))
    await trail.close()
    client = redis.Redis(port=redis_server.port)
    assert verify(client) == (3, None)
    assert [entry["record"]["actor"] for _, entry in read_entries(client)] == ["b", "b", "c"]


async def test_the_audit_commands_report_an_intact_chain_then_the_altered_entry(redis_server, tmp_path, monkeypatch):
    await fill(f"redis://127.0.0.1:{redis_server.port}/0")
    monkeypatch.setenv("SALESGUARD_REDIS_URL", f"redis://127.0.0.1:{redis_server.port}/0")
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0 and "audit trail intact: 60 entries" in ok.output
    exported = runner.invoke(cli, ["audit", "export", "--out", str(tmp_path / "trail.jsonl")])
    assert exported.exit_code == 0 and len((tmp_path / "trail.jsonl").read_bytes().splitlines()) == 60

    def alter(entries):
        entries[41]["record"]["n"] = 99
        return entries
    rewrite(redis.Redis(port=redis_server.port), alter)
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1 and "broken at entry 42: entry 42 was altered" in broken.output
