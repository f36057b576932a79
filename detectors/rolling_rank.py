"""Rank of a value among the last N values seen, for values in [0, 1] — what turns a raw
anomaly score into "more unusual than x % of recent orders".

Values are counted in 65,536 equal bins (a Fenwick tree over the bin counts) and forgotten in
the order they came (a ring of their bins), so ranking, adding and forgetting each cost a
compiled loop of 16 steps, whatever the window. Values closer than 1/65,536 rank as equal.

>>> ranks = RollingRank(window=3)
>>> for v in (0.1, 0.2, 0.3, 0.4):
...     ranks.add(v)
>>> ranks.rank(0.35), ranks.rank(0.2), len(ranks)
(0.6666666666666666, 0.0, 3)
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Bins of [0, 1] (a power of two, for the Fenwick tree).
BINS = 1 << 16


@njit("int64(float64)", cache=True)
def _bin(value):  # type: ignore[no-untyped-def]
    return min(max(int(value * BINS), 0), BINS - 1)


@njit("int64(int32[::1], int64)", cache=True)
def _below(tree, bin_):  # type: ignore[no-untyped-def]
    """How many counted values are in bins below ``bin_``."""
    total, i = 0, bin_
    while i > 0:
        total += tree[i - 1]
        i -= i & -i
    return total


@njit("void(int32[::1], int64, int64)", cache=True)
def _count(tree, bin_, delta):  # type: ignore[no-untyped-def]
    i = bin_ + 1
    while i <= tree.shape[0]:
        tree[i - 1] += delta
        i += i & -i


@njit("float64(int32[::1], int64, float64)", cache=True)
def _rank(tree, size, value):  # type: ignore[no-untyped-def]
    return _below(tree, _bin(value)) / size if size else 0.5


@njit("float64[::1](int32[::1], int64, float64[::1])", cache=True)
def _ranks(tree, size, values):  # type: ignore[no-untyped-def]
    out = np.empty(values.shape[0])
    for i in range(values.shape[0]):
        out[i] = _rank(tree, size, values[i])
    return out


@njit("void(int32[::1], int32[::1], int64[::1], float64)", cache=True)
def _add(tree, ring, position, value):  # type: ignore[no-untyped-def]
    """Count ``value``; when the ring is full, forget the value it replaces.
    ``position`` = [values added so far]."""
    slot = position[0] % ring.shape[0]
    if position[0] >= ring.shape[0]:
        _count(tree, ring[slot], -1)
    ring[slot] = _bin(value)
    _count(tree, ring[slot], 1)
    position[0] += 1


class RollingRank:
    """Share of the last ``window`` values added that are below a value in [0, 1]."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._tree = np.zeros(BINS, dtype=np.int32)
        self._ring = np.zeros(window, dtype=np.int32)
        self._added = np.zeros(1, dtype=np.int64)

    def rank(self, value: float) -> float:
        """Share of remembered values below ``value`` (0.5 before any)."""
        return _rank(self._tree, len(self), value)

    def ranks(self, values: np.ndarray) -> np.ndarray:
        """:meth:`rank` of each of ``values``, in one call."""
        return _ranks(self._tree, len(self), values)

    def add(self, value: float) -> None:
        """Remember ``value``, forgetting the oldest beyond the window."""
        _add(self._tree, self._ring, self._added, value)

    def __len__(self) -> int:
        return min(int(self._added[0]), self.window)
