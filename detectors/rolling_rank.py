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

from detectors import _kernels

#: Bins of [0, 1] (a power of two, for the Fenwick tree).
BINS = 1 << 16


class RollingRank:
    """Share of the last ``window`` values added that are below a value in [0, 1]."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._tree = np.zeros(BINS, dtype=np.int32)
        self._ring = np.zeros(window, dtype=np.int32)
        self._added = np.zeros(1, dtype=np.int64)

    def rank(self, value: float) -> float:
        """Share of remembered values below ``value`` (0.5 before any)."""
        return _kernels.rank(self._tree, len(self), value)

    def ranks(self, values: np.ndarray) -> np.ndarray:
        """:meth:`rank` of each of ``values``, in one call."""
        return _kernels.ranks(self._tree, len(self), values)

    def add(self, value: float) -> None:
        """Remember ``value``, forgetting the oldest beyond the window."""
        _kernels.rank_add(self._tree, self._ring, self._added, value)

    def __len__(self) -> int:
        return min(int(self._added[0]), self.window)
