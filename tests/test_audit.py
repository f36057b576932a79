"""The audit trail against a real Redis server: two writers keep one chain; an altered, a
missing or a removed last entry is found at that entry; an outage loses nothing."""

import asyncio
from typing import cast

import orjson
import pytest
import redis
from typer.testing import CliRunner

from streams.audit import AuditTrail, chain_entry, export, read_entries, verify
from streams.cli import cli


def records(who: str, n: int) -> list[dict]:
    return [{"kind": "desk", "actor": who, "n": i} for i in range(n)]


async def fill(url: str) -> None:
    a, b = AuditTrail(url), AuditTrail(url)
    await asyncio.gather(*[trail.append(records(name, 5)) for _ in range(6) for trail, name in ((a, "a"), (b, "b"))])
    await a.close()
    await b.close()


@pytest.fixture()
async def filled(redis_server) -> redis.Redis:
    """A chain of 60 entries written by two writers; a client to read and tamper with it."""
    await fill(f"redis://127.0.0.1:{redis_server.port}/0")
    return redis.Redis(port=redis_server.port)


def rewrite(client: redis.Redis, index: int, change) -> None:
    """Rewrite the stream with entry ``index`` replaced by ``change(entry)`` (what someone with
    Redis access could do)."""
    entries = [orjson.loads(fields[b"entry"]) for _, fields in cast(list, client.xrange("sg:audit"))]
    entries[index] = change(entries[index])
    client.delete("sg:audit")
    for entry in entries:
        client.xadd("sg:audit", {"entry": orjson.dumps(entry)})


def by_mallory(entry: dict) -> dict:
    return {**entry, "record": {**entry["record"], "actor": "mallory"}}


async def test_two_writers_keep_one_intact_chain_and_export_writes_it(filled, tmp_path):
    assert verify(filled) == (60, None)
    with (tmp_path / "audit.jsonl").open("wb") as out:
        assert export(filled, out) == 60
    lines = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    assert [line["seq"] for line in lines] == list(range(1, 61))
    assert sorted((r["record"]["actor"], r["record"]["n"]) for r in lines) == sorted(
        [(name, i) for name in "ab" for _ in range(6) for i in range(5)])


async def test_an_altered_entry_is_found_at_that_entry(filled):
    rewrite(filled, 16, by_mallory)  # entry 17
    assert verify(filled)[1] == (17, "entry 17 was altered: its content does not match its hash")


async def test_a_recomputed_hash_is_found_at_the_next_entry(filled):
    rewrite(filled, 16, lambda entry: chain_entry(17, entry["prev"], by_mallory(entry)["record"]))
    assert verify(filled)[1] == (18, "entry 18 does not follow entry 17: entry 17 was altered or replaced")


async def test_missing_entries_are_found_in_the_middle_and_at_the_end(filled):
    ids = [stream_id for stream_id, _ in filled.xrange("sg:audit")]
    filled.xdel("sg:audit", ids[-1])
    assert verify(filled)[1] == (60, "entries 60 to 60 are missing (the head records entry 60)")
    filled.xdel("sg:audit", ids[29])
    assert verify(filled)[1] == (30, "entry 30 is missing (the next entry found is 31)")


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


async def test_the_audit_commands_report_an_intact_chain_then_the_altered_entry(redis_server, filled, tmp_path,
                                                                                  monkeypatch):
    monkeypatch.setenv("SALESGUARD_REDIS_URL", f"redis://127.0.0.1:{redis_server.port}/0")
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify"])
    assert ok.exit_code == 0 and "audit trail intact: 60 entries" in ok.output
    exported = runner.invoke(cli, ["audit", "export", "--out", str(tmp_path / "trail.jsonl")])
    assert exported.exit_code == 0 and len((tmp_path / "trail.jsonl").read_bytes().splitlines()) == 60
    rewrite(filled, 41, lambda entry: {**entry, "record": {**entry["record"], "n": 99}})
    broken = runner.invoke(cli, ["audit", "verify"])
    assert broken.exit_code == 1 and "broken at entry 42: entry 42 was altered" in broken.output
