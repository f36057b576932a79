"""Writing to Redis with little of a worker's CPU. Through redis-py, a pipelined command costs
tens of microseconds of Python (queueing, packing, parsing its reply), and the mirror and audit
trail write several per decision. So: many single-key commands go as one script call (one
request, one reply; the commands of a call run atomically), and :func:`connect`, which makes
every asyncio Redis client here, packs commands with hiredis (C, ~5x less CPU per argument than
redis-py's asyncio packer; the same bytes on the wire).

>>> batch = CommandBatch()
>>> batch.add("SET", "sg:decision:SO-1", b"{}", "EX", 60)
>>> batch.add("ZREM", "sg:holds", "SO-1")
>>> len(batch), batch.keys, batch.args
(2, ['sg:decision:SO-1', 'sg:holds'], ['SET', 3, b'{}', 'EX', 60, 'ZREM', 1, 'SO-1'])
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.connection import Connection, parse_url
from redis.connection import HiredisRespSerializer

#: Runs the commands: command k acts on KEYS[k]; ARGV holds, per command, its name, the number
#: of further arguments and those arguments.
RUN_COMMANDS = """
local i = 1
for k = 1, #KEYS do
  local n = tonumber(ARGV[i + 1])
  redis.call(ARGV[i], KEYS[k], unpack(ARGV, i + 2, i + 1 + n))
  i = i + 2 + n
end
return #KEYS
"""

#: Commands per script call: a large write lets the stream run between its calls and keeps
#: Redis responsive to readers meanwhile.
COMMANDS_PER_CALL = 2000
#: Arguments one command may have here: Redis's Lua unpacks at most 8,000 values at a time.
MAX_ARGS = 4000

Arg = str | bytes | int | float


@dataclass
class CommandBatch:
    """Single-key commands in the order they are to run (see :data:`RUN_COMMANDS`)."""

    keys: list[str] = field(default_factory=list)
    args: list[Arg] = field(default_factory=list)

    def add(self, command: str, key: str, *args: Arg) -> None:
        """Queue ``command key args…`` (at most :data:`MAX_ARGS` arguments: split larger ones)."""
        if len(args) > MAX_ARGS:
            raise ValueError(f"{command} {key} has {len(args)} arguments; at most {MAX_ARGS} fit one script call")
        self.keys.append(key)
        self.args += [command, len(args), *args]

    def __len__(self) -> int:
        return len(self.keys)

    def calls(self, size: int = COMMANDS_PER_CALL) -> Iterator[tuple[list[str], list[Arg]]]:
        """The batch cut into ``(keys, args)`` of at most ``size`` commands each."""
        position = 0
        for start in range(0, len(self.keys), size):
            keys = self.keys[start:start + size]
            end = position
            for _ in keys:
                end += 2 + int(self.args[end + 1])
            yield keys, self.args[position:end]
            position = end


async def run(script: Any, batch: CommandBatch) -> None:
    """Run ``batch`` with ``script`` (``client.register_script(RUN_COMMANDS)``), a call at a time."""
    for keys, args in batch.calls():
        await script(keys=keys, args=args)


class _HiredisPacking:
    """Packs commands with hiredis (mixed into a redis-py asyncio connection class)."""

    _packer = HiredisRespSerializer()

    def pack_command(self, *args: Any) -> list[bytes]:
        return self._packer.pack(*args)


def connect(url: str, **options: Any) -> aioredis.Redis:
    """``redis.asyncio.from_url(url, **options)`` whose connections pack commands with hiredis."""
    base = parse_url(url).get("connection_class", Connection)  # TLS and unix sockets have their own
    packing = type(f"Hiredis{base.__name__}", (_HiredisPacking, base), {})
    return aioredis.from_url(url, connection_class=packing, **options)
