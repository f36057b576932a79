"""Where model versions live between the trainers and the scoring workers: a Redis hash per
kind of training example (``<prefix>models:order``, ``<prefix>models:credit``: ``version``,
``models``, ``learned``, ``offset``, ``saved_at``), each replaced atomically and only over the
version the writer started from, so two trainers of one kind (briefly, during a rebalance) can
never overwrite each other's newer model. Without Redis, an in-process store does the same for a
single worker.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from redis.exceptions import RedisError

from streams.redis_commands import connect


class ModelStoreError(Exception):
    """The store cannot be read or written right now (callers keep their models and retry)."""


@dataclass(frozen=True)
class Checkpoint:
    """A saved model version: the models (see :meth:`RiskModels.to_bytes`), the ids of the
    examples they learned (see :class:`streams.trainer.RecentIds`) and the offset of the record
    of the last example they include, on their kind's ``model-examples`` partition (-1: none)."""

    version: int
    models: bytes
    learned: bytes
    offset: int = -1


class ModelStore(Protocol):
    """Saves and loads model checkpoints."""

    async def version(self) -> int:
        """The newest saved version (0: none yet)."""

    async def load(self) -> Checkpoint | None:
        """The newest checkpoint, or None."""

    async def save(self, checkpoint: Checkpoint, previous: int) -> bool:
        """Store ``checkpoint`` if the newest saved version is still ``previous``; False if
        another writer saved first."""


class MemoryModelStore:
    """A model store inside one process (no Redis configured)."""

    def __init__(self) -> None:
        self._checkpoint: Checkpoint | None = None

    async def version(self) -> int:
        return self._checkpoint.version if self._checkpoint else 0

    async def load(self) -> Checkpoint | None:
        return self._checkpoint

    async def save(self, checkpoint: Checkpoint, previous: int) -> bool:
        if await self.version() != previous:
            return False
        self._checkpoint = checkpoint
        return True


#: Compare-and-set of the whole checkpoint in one step.
_SAVE = """
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'models', ARGV[3], 'learned', ARGV[4], 'offset', ARGV[5],
           'saved_at', ARGV[6])
return 1
"""


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """Redis and connection errors as :class:`ModelStoreError`."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise ModelStoreError(f"Redis: {type(exc).__name__}: {exc}") from exc


class RedisModelStore:
    """The model checkpoints a trainer of ``kind`` saves, in a Redis hash. Redis errors become
    :class:`ModelStoreError`."""

    def __init__(self, url: str, kind: str, prefix: str = "sg:") -> None:
        self.client = connect(url, socket_timeout=5.0, socket_connect_timeout=2.0)
        self.key = f"{prefix}models:{kind}"
        self._save = self.client.register_script(_SAVE)

    async def version(self) -> int:
        with _store_errors():
            value = await self.client.hget(self.key, "version")
        return int(value) if value else 0

    async def load(self) -> Checkpoint | None:
        with _store_errors():
            version, models, learned, offset = await self.client.hmget(
                self.key, ["version", "models", "learned", "offset"])
        if not version or not isinstance(models, bytes):
            return None
        return Checkpoint(int(version), models, learned if isinstance(learned, bytes) else b"", int(offset or -1))

    async def save(self, checkpoint: Checkpoint, previous: int) -> bool:
        args: list[bytes | int | float] = [
            previous, checkpoint.version, checkpoint.models, checkpoint.learned, checkpoint.offset, time.time()]
        with _store_errors():
            return bool(await self._save(keys=[self.key], args=args))

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
