"""Malformed messages made from valid ones, for testing and benchmarking bad input at volume:
wrong types, missing fields, NaN/Infinity/negative/huge amounts, very long strings, deep
nesting, invalid UTF-8, oversized payloads, unknown event types, not JSON at all.

Each mutation keeps the message's topic and key (so it reaches the worker that owns the
customer) and names itself in ``kind`` (``bad:<mutation>``).

>>> import random
>>> from streams.generator import SalesSimulator
>>> valid = next(m for m in SalesSimulator(seed=1, total_events=50) if m.kind == "order.placed")
>>> bad = mutate(valid, random.Random(3))
>>> bad.topic == valid.topic and bad.key == valid.key and bad.kind.startswith("bad:")
True
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from streams.generator import GeneratedMessage

#: Fields every input event carries (dropping one makes it invalid).
REQUIRED = ("type", "event_id", "customer_id", "event_time")
#: Fields that hold amounts, where present.
AMOUNTS = ("total", "amount", "credit_limit")


def _loads(message: GeneratedMessage) -> dict[str, Any]:
    event: dict[str, Any] = orjson.loads(message.value)
    return event


def wrong_type(event: dict[str, Any], rng: random.Random) -> bytes:
    field = rng.choice([k for k in event if k != "type"])
    event[field] = rng.choice([{"nested": [1, 2]}, [event[field]]])
    return orjson.dumps(event)


def missing_field(event: dict[str, Any], rng: random.Random) -> bytes:
    del event[rng.choice(REQUIRED[1:])]
    return orjson.dumps(event)


def bad_number(event: dict[str, Any], rng: random.Random) -> bytes:
    field = next((f for f in AMOUNTS if f in event), None)
    text = rng.choice(["NaN", "Infinity", "-Infinity", "-250.0", "1e308", "123456789012345678901234567890"])
    if field is None:  # no amount: a bad event time instead
        event["event_time"] = rng.choice(["yesterday", "2026-13-45T99:99:99Z", 1e20])
        return orjson.dumps(event)
    event[field] = "__NUMBER__"
    return orjson.dumps(event).replace(b'"__NUMBER__"', text.encode())


def long_string(event: dict[str, Any], rng: random.Random) -> bytes:
    field = rng.choice([k for k, v in event.items() if isinstance(v, str) and k != "type"])
    event[field] = "x" * rng.choice([65, 201, 5_000, 200_000])
    return orjson.dumps(event)


def deep_nesting(event: dict[str, Any], rng: random.Random) -> bytes:
    depth = rng.choice([300, 5_000])
    return orjson.dumps(event)[:-1] + b', "extra": ' + b"[" * depth + b"]" * depth + b"}"


def invalid_utf8(event: dict[str, Any], rng: random.Random) -> bytes:
    raw = orjson.dumps(event)
    at = raw.index(b'"customer_id"') + len(b'"customer_id": "') - 1
    return raw[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]) + raw[at:]


def oversized(event: dict[str, Any], rng: random.Random) -> bytes:
    event["note"] = "y" * rng.choice([70_000, 300_000])
    return orjson.dumps(event)


def unknown_type(event: dict[str, Any], rng: random.Random) -> bytes:
    event["type"] = rng.choice(["order.exploded", "", "payment.received.v2", "ORDER.PLACED"])
    return orjson.dumps(event)


def not_json(event: dict[str, Any], rng: random.Random) -> bytes:
    raw = orjson.dumps(event)
    return rng.choice([b"", b"null", b"[]", b"42", raw[: len(raw) // 2], bytes(rng.randrange(256) for _ in range(40))])


#: Every mutation, by name.
MUTATIONS: dict[str, Callable[[dict[str, Any], random.Random], bytes]] = {
    f.__name__: f for f in (wrong_type, missing_field, bad_number, long_string, deep_nesting, invalid_utf8,
                            oversized, unknown_type, not_json)
}


def mutate(message: GeneratedMessage, rng: random.Random) -> GeneratedMessage:
    """A malformed copy of the valid ``message``, by a mutation chosen with ``rng``."""
    name = rng.choice(list(MUTATIONS))
    return GeneratedMessage(message.topic, message.key, MUTATIONS[name](_loads(message), rng), f"bad:{name}")


def interleave(valid: list[GeneratedMessage], count: int, seed: int = 0) -> Iterator[GeneratedMessage]:
    """``valid`` with ``count`` malformed copies of its messages spread evenly between them."""
    rng = random.Random(seed)
    sources = [m for m in valid if m.is_valid]
    every = max(1, len(valid) // max(1, count))
    made = 0
    for index, message in enumerate(valid):
        yield message
        if made < count and index % every == every - 1:
            made += 1
            yield mutate(rng.choice(sources), rng)
    while made < count:
        made += 1
        yield mutate(rng.choice(sources), rng)
