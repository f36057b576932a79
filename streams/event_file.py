"""Recorded sales events as a JSON Lines file, for backtests: one message per line.

A line is either an input event as producers send it (its topic follows from its ``type``, its
key is its ``customer_id``), or — for a message that is not a JSON object, such as the
generator's deliberately broken ones — an envelope ``{"topic": ..., "key": ..., "value_base64":
...}`` with the exact bytes. ``salesguard demo --record FILE`` writes such a file.

>>> import io
>>> out = io.StringIO()
>>> write_message(out, "orders", b"C-1", b'{"type": "order.placed", "customer_id": "C-1"}')
>>> write_message(out, "ledger", b"C-1", b"not json")
>>> [(m.topic, m.key, m.value) for m in read_messages(io.StringIO(out.getvalue()))]
[('orders', b'C-1', b'{"type": "order.placed", "customer_id": "C-1"}'), ('ledger', b'C-1', b'not json')]
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from streams.messages import RawMessage


def input_topic_of(event: dict[str, Any]) -> str:
    """The input topic an event belongs on, from its type."""
    kind = str(event.get("type", ""))
    if kind.startswith("order."):
        return "orders"
    if kind.startswith("customer."):
        return "customers"
    if kind in ("hold.release", "hold.reject", "credit_limit.set", "on_stop.set"):
        return "risk-commands"
    return "ledger"


def write_message(out: IO[str], topic: str, key: bytes | None, value: bytes) -> None:
    """Append one message: the event itself when it is a JSON object on its topic, else an envelope."""
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        event = None
    if isinstance(event, dict) and input_topic_of(event) == topic and key == str(event.get("customer_id")).encode():
        out.write(value.decode("utf-8").replace("\n", " ") + "\n")
        return
    envelope = {"topic": topic, "key": key.decode("utf-8", "replace") if key is not None else None,
                "value_base64": base64.b64encode(value).decode()}
    out.write(orjson.dumps(envelope).decode() + "\n")


def read_messages(lines: Iterable[str]) -> Iterator[RawMessage]:
    """The messages of a recorded file, in order (offsets are line numbers). A line that is not
    JSON at all is passed on as it is, to be dead-lettered like any bad message."""
    for number, line in enumerate(lines, start=1):
        text = line.rstrip("\n")
        if not text.strip():
            continue
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and "value_base64" in parsed and "topic" in parsed:
            key = parsed.get("key")
            yield RawMessage(str(parsed["topic"]), 0, number, key.encode() if isinstance(key, str) else None,
                             base64.b64decode(parsed["value_base64"]), 0.0)
        elif isinstance(parsed, dict):
            customer = parsed.get("customer_id")
            yield RawMessage(input_topic_of(parsed), 0, number, str(customer).encode() if customer else None,
                             text.encode(), 0.0)
        else:
            yield RawMessage("ledger", 0, number, None, text.encode(), 0.0)
