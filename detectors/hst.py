"""Half-space trees on min-max scaled features, compiled: the same model as river's
``preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(...)`` — the trees are drawn as river's
``make_padded_tree`` draws them, from the same random generator, so the scores are equal —
stored as flat arrays and walked by compiled loops (:mod:`detectors.kernels`; about 30x faster
than walking river's node objects). River's tree package is not imported: it loads SciPy (~70 MB
per worker).

>>> import random
>>> from river import anomaly, preprocessing
>>> rng = random.Random(0)
>>> rows = [{"a": rng.gauss(0, 1), "b": rng.random()} for _ in range(600)]
>>> fast = ScaledHalfSpaceTrees(n_trees=5, height=6, window_size=100, seed=3)
>>> slow = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(n_trees=5, height=6, window_size=100, seed=3)
>>> same = []
>>> for x in rows:
...     same.append(abs(fast.score_one(x) - slow.score_one(x)) < 1e-12)
...     fast.learn_one(x)
...     slow.learn_one(x)
>>> all(same)
True
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detectors._kernels import hst_learn, hst_score, hst_score_rows


def draw_tree(limits: dict[str, tuple[float, float]], height: int, padding: float, rng: random.Random,
              features: np.ndarray, thresholds: np.ndarray, index: Mapping[str, int], position: int = 0) -> None:
    """Draw one tree into ``features``/``thresholds`` (node ``position``'s children at
    ``2 * position + 1`` and ``+ 2``), taking the same numbers from ``rng`` in the same order as
    river's ``tree.padded.make_padded_tree``: a feature weighted by the width of its limits, a
    split point inside the padded limits, then the left subtree, then the right."""
    if height == 0:
        return
    on = rng.choices(population=list(limits), weights=[high - low for low, high in limits.values()])[0]
    low, high = limits[on]
    at = rng.uniform(low + padding * (high - low), high - padding * (high - low))
    features[position], thresholds[position] = index[on], at
    limits[on] = (low, at)
    draw_tree(limits, height - 1, padding, rng, features, thresholds, index, 2 * position + 1)
    limits[on] = (at, high)
    draw_tree(limits, height - 1, padding, rng, features, thresholds, index, 2 * position + 2)
    limits[on] = (low, high)


class ScaledHalfSpaceTrees:
    """Min-max scaling + half-space trees over a fixed set of numeric features (those of the
    first row learned; later extra features are ignored, missing ones follow the most visited
    branch, as in river). ``score_one`` is in [0, 1], higher = more unusual; 0 during the
    first window. ``margin`` > 0 scales the range seen into ``[margin, 1 - margin]`` so that
    values beyond it fall where the trees saw nothing (0: exactly river's min-max scaling)."""

    def __init__(self, n_trees: int = 10, height: int = 8, window_size: int = 250, seed: int | None = None,
                 margin: float = 0.0) -> None:
        self.n_trees = n_trees
        self.margin = margin
        self.height = height
        self.window_size = window_size
        self.seed = seed
        self.rng = random.Random(seed)
        self.names: list[str] = []
        self._values_of: operator.itemgetter[Any] | None = None
        self.counter = 0
        self.first_window = True
        nodes = 2 ** (height + 1) - 1
        self._features = np.zeros((n_trees, nodes), dtype=np.int64)
        self._thresholds = np.zeros((n_trees, nodes))
        self._r_mass = np.zeros((n_trees, nodes))
        self._l_mass = np.zeros((n_trees, nodes))
        self._lows = np.zeros(0)
        self._highs = np.zeros(0)

    def row(self, x: Mapping[str, float]) -> np.ndarray:
        """``x`` as the array the trees read (``nan`` where a feature is missing)."""
        if self._values_of is not None:
            try:
                return np.array(self._values_of(x), dtype=np.float64)
            except KeyError:
                pass
        return np.array([x.get(name, math.nan) for name in self.names], dtype=np.float64)

    def rows(self, xs: Sequence[Mapping[str, float]]) -> np.ndarray:
        """Several rows at once (one per ``x``, as :meth:`row` makes them)."""
        if self._values_of is not None:
            try:
                return np.array(list(map(self._values_of, xs)), dtype=np.float64).reshape(len(xs), len(self.names))
            except KeyError:
                pass
        return np.array([[x.get(name, math.nan) for name in self.names] for x in xs],
                        dtype=np.float64).reshape(len(xs), len(self.names))

    def _build(self, x: Mapping[str, float]) -> None:
        self.names = sorted(x)
        # all values in one C call when every feature is there (a tuple needs two or more)
        self._values_of = operator.itemgetter(*self.names) if len(self.names) > 1 else None
        index = {name: i for i, name in enumerate(self.names)}
        limits = {name: (0.0, 1.0) for name in self.names}
        for t in range(self.n_trees):
            draw_tree(limits, self.height, 0.15, self.rng, self._features[t], self._thresholds[t], index)
        self._lows = np.full(len(self.names), math.inf)
        self._highs = np.full(len(self.names), -math.inf)

    def learn_one(self, x: Mapping[str, float]) -> None:
        """Update the scaler, then the trees' masses; swap reference masses every window."""
        if not self.names:
            self._build(x)
        self.learn_row(self.row(x))

    def learn_row(self, row: np.ndarray) -> None:
        """:meth:`learn_one` for a row made by :meth:`row` (after the first row is learned)."""
        hst_learn(row, self._lows, self._highs, self.margin, self._features, self._thresholds, self._l_mass,
                  self.height)
        self.counter += 1
        if self.counter == self.window_size:
            self._r_mass[:] = self._l_mass
            self._l_mass[:] = 0.0
            self.first_window = False
            self.counter = 0

    def score_one(self, x: Mapping[str, float]) -> float:
        """1 - (mass-weighted depth reached) / (largest possible): high when x lands where few
        recent rows did."""
        if self.first_window or not self.names:
            return 0.0
        return self.score_row(self.row(x))

    def score_row(self, row: np.ndarray) -> float:
        """:meth:`score_one` for a row made by :meth:`row`."""
        if self.first_window:
            return 0.0
        score = hst_score(row, self._lows, self._highs, self.margin, self._features, self._thresholds, self._r_mass,
                          self._l_mass, self.height, 0.1 * self.window_size)
        return 1.0 - score / self._largest_score()

    def score_rows(self, rows: np.ndarray) -> np.ndarray:
        """:meth:`score_row` of every row of ``rows`` (made by :meth:`rows`), in one call."""
        if self.first_window:
            return np.zeros(rows.shape[0])
        scores = hst_score_rows(rows, self._lows, self._highs, self.margin, self._features, self._thresholds,
                                self._r_mass, self._l_mass, self.height, 0.1 * self.window_size)
        return 1.0 - scores / self._largest_score()

    def _largest_score(self) -> int:
        return self.n_trees * self.window_size * (2 ** (self.height + 1) - 1)
