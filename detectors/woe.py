"""Online weight of evidence (WoE): the credit scorecard's encoding, learned one row at a time.

For a category value *v* of feature *k*, WoE is the log-odds of "bad" among rows with that value
minus the overall log-odds, smoothed towards zero while few rows have been seen. Information
value (IV) measures how much a feature separates bad from good; the scorecard weights each
feature's WoE by it.

>>> woe = OnlineWoE(prior=1.0)
>>> for colour, bad in [("red", 1), ("red", 1), ("blue", 0), ("blue", 0), ("red", 0)]:
...     woe.learn_one({"colour": colour}, bad)
>>> woe.transform_one({"colour": "red"})["colour"] > 0 > woe.transform_one({"colour": "blue"})["colour"]
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


class OnlineWoE:
    """Weight of evidence of every string-valued feature, from counts of bad/good seen so far.

    Parameters
    ----------
    prior
        How many rows' worth of the overall bad rate a value starts with. A value seen a few
        times is pulled towards WoE 0 (no evidence) instead of taking an extreme log-odds from
        two or three customers.
    """

    def __init__(self, prior: float = 10.0) -> None:
        self.prior = prior
        self.counts: dict[tuple[str, str], list[int]] = {}
        self.bad = 0
        self.good = 0
        self._iv_weights: dict[str, float] | None = None
        self._woe: dict[tuple[str, str], float] = {}  # cache, cleared by learn_one

    @property
    def bad_rate(self) -> float:
        """Smoothed share of bad rows seen."""
        return (self.bad + 1) / (self.bad + self.good + 2)

    def transform_one(self, x: Mapping[str, Any]) -> dict[str, float]:
        """WoE of each string feature of ``x`` (other features are left out)."""
        cache = self._woe
        out = {}
        for key, value in x.items():
            if isinstance(value, str):
                woe = cache.get((key, value))
                if woe is None:
                    woe = cache[(key, value)] = self._weight(key, value)
                out[key] = woe
        return out

    def _weight(self, key: str, value: str) -> float:
        rate = self.bad_rate
        bad, good = self.counts.get((key, value), (0, 0))
        return math.log((bad + self.prior * rate) / (good + self.prior * (1 - rate))) - math.log(rate / (1 - rate))

    def learn_one(self, x: Mapping[str, Any], y: bool | int) -> None:
        """Count ``x``'s string values as bad (``y`` true) or good."""
        bad = int(bool(y))
        for key, value in x.items():
            if isinstance(value, str):
                counts = self.counts.setdefault((key, value), [0, 0])
                counts[0] += bad
                counts[1] += 1 - bad
        self.bad += bad
        self.good += 1 - bad
        self._iv_weights = None
        self._woe.clear()

    def iv_weights(self) -> dict[str, float]:
        """Per feature, sqrt(IV / mean IV): features that separate bad from good weigh more."""
        if self._iv_weights is None:
            bad_total, good_total = self.bad + 1, self.good + 1
            iv: dict[str, float] = {}
            for (key, _), (bad, good) in self.counts.items():
                p_bad, p_good = (bad + 0.5) / bad_total, (good + 0.5) / good_total
                iv[key] = iv.get(key, 0.0) + (p_bad - p_good) * math.log(p_bad / p_good)
            mean = sum(iv.values()) / len(iv) if iv else 0.0
            self._iv_weights = {k: math.sqrt(v / mean) if mean > 0 else 1.0 for k, v in iv.items()}
        return self._iv_weights
