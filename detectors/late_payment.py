"""The credit model: probability that an invoice is paid late (or written off), learned online.

Two views of the same features are averaged:

- a **scorecard**: weight of evidence (WoE) of every categorical feature and of every numeric
  feature cut into bins, weighted by each feature's information value — the way credit
  scorecards are built, here learned one row at a time;
- a **logistic regression** on standardized numbers and one-hot categories.

The scorecard is strong from few rows (it needs counts, not gradients); the regression picks up
what binning loses. Averaged, they beat either alone on the German credit data: progressive ROC
AUC 0.761 over seeds 0–4 (``salesguard evaluate --dataset german-credit --seed 0 ... --seed 4``),
where plain one-hot logistic regression gets 0.726 and the scorecard alone 0.755.

>>> model = LatePaymentModel(bins={"days_late_avg": [1, 10, 30]})
>>> for _ in range(30):
...     model.learn_one({"days_late_avg": 0.0, "risk_class": "A"}, False)
...     model.learn_one({"days_late_avg": 45.0, "risk_class": "D"}, True)
>>> late = model.predict_proba_one({"days_late_avg": 40.0, "risk_class": "D"})[True]
>>> prompt = model.predict_proba_one({"days_late_avg": 0.0, "risk_class": "A"})[True]
>>> late > 0.8 > 0.2 > prompt
True
>>> [name for name, _ in model.reasons({"days_late_avg": 40.0, "risk_class": "D"})]
['days_late_avg', 'risk_class']
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import Any

from river import base, linear_model, optim, preprocessing

from detectors.woe import OnlineWoE

#: Plain-dict features: numbers, strings for categories, ``None`` for missing.
Features = Mapping[str, Any]


#: Band labels by index (``band0`` below the first edge, ...).
_BANDS = tuple(f"band{i}" for i in range(64))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


class LatePaymentModel(base.Classifier):
    """Online late-payment probability with reason codes.

    Parameters
    ----------
    bins
        Edges that cut numeric features into bands for the scorecard (``{"age": [25, 35]}``
        gives the bands <25, 25–35, ≥35). A numeric feature without edges is used by the
        regression only. Bands are how a risk team reads a scorecard, and they let the model
        see non-linear effects (young *and* old applicants being riskier) without more data.
    woe_prior
        Rows' worth of the overall bad rate each category starts with: keeps a value seen
        twice from swinging the score.
    learning_rate
        Step size of the regression's SGD.
    l2
        Ridge penalty of the regression.
    """

    def __init__(self, bins: Mapping[str, Sequence[float]] | None = None, woe_prior: float = 10.0,
                 learning_rate: float = 0.05, l2: float = 0.0) -> None:
        self.bins = dict(bins or {})
        self.woe_prior = woe_prior
        self.learning_rate = learning_rate
        self.l2 = l2
        self._woe = OnlineWoE(prior=woe_prior)
        self._scaler = preprocessing.StandardScaler()
        self._regression = linear_model.LogisticRegression(optimizer=optim.SGD(learning_rate), l2=l2)
        self._onehot_names: dict[tuple[str, str], str] = {}  # "key=value" strings, made once

    # --- the two views -------------------------------------------------------------------------

    def _prepare(self, x: Features, learn: bool = False) -> tuple[dict[str, float], dict[str, str]]:
        """One pass over ``x``: the regression's input (standardized numbers, then one-hot
        categories) and the scorecard's bands (categories as they are, numbers with edges as
        their band, ``missing`` for ``None``). With ``learn``, the scaler learns the numbers."""
        numbers: dict[str, float] = {}
        onehot: dict[str, float] = {}
        bands: dict[str, str] = {}
        bins, names = self.bins, self._onehot_names
        for key, value in x.items():
            if isinstance(value, str):
                bands[key] = value
                name = names.get((key, value))
                if name is None:
                    name = names[(key, value)] = f"{key}={value}"
                onehot[name] = 1.0
            elif value is None:
                bands[key] = "missing"
            else:
                if isinstance(value, bool):
                    onehot[f"{key}={value}"] = 1.0
                else:
                    numbers[key] = float(value)
                if key in bins:
                    bands[key] = _BANDS[bisect.bisect(bins[key], value)]
        if learn:
            self._scaler.learn_one(numbers)
        means, variances = self._scaler.means, self._scaler.vars
        row = {}
        for key, value in numbers.items():
            variance = variances.get(key, 0.0)
            row[key] = (value - means.get(key, 0.0)) / variance**0.5 if variance else 0.0
        row.update(onehot)
        return row, bands

    def _scorecard_terms(self, bands: Mapping[str, str]) -> dict[str, float]:
        weights = self._woe.iv_weights()
        return {k: weights.get(k, 0.0) * woe for k, woe in self._woe.transform_one(bands).items()}

    # --- river API -------------------------------------------------------------------------

    def learn_one(self, x: Features, y: bool) -> None:  # type: ignore[override]
        """Learn from one outcome: ``y`` is True when the invoice was paid late or written off."""
        row, bands = self._prepare(x, learn=True)
        self._regression.learn_one(row, bool(y))
        self._woe.learn_one(bands, bool(y))

    def predict_proba_one(self, x: Features) -> dict[bool, float]:  # type: ignore[override]
        """``{True: p_late, False: 1 - p_late}``. The scorecard view is the evidence relative to
        the average customer (centred at 0.5), so both views weigh equally in the ranking."""
        p_late, _ = self.explain_one(x)
        return {True: p_late, False: 1.0 - p_late}

    def reasons(self, x: Features, top: int = 3) -> list[tuple[str, float]]:
        """The features that push this probability up most: ``(feature, weighted WoE)``,
        strongest first, only those above zero (reason codes for the decision)."""
        return self.explain_one(x, top)[1]

    def explain_one(self, x: Features, top: int = 3) -> tuple[float, list[tuple[str, float]]]:
        """The late-payment probability and its reasons (see :meth:`reasons`), computed once."""
        row, bands = self._prepare(x)
        terms = self._scorecard_terms(bands)
        scorecard = _sigmoid(sum(terms.values()))
        regression = self._regression.predict_proba_one(row).get(True, 0.5)
        strongest = sorted(terms.items(), key=lambda kv: -kv[1])[:top]
        return 0.5 * (scorecard + regression), [(name, round(value, 4)) for name, value in strongest if value > 0]
