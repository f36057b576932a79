"""Drift of the models: ADWIN windows over the credit model's error and over the anomaly
score of incoming orders. A drift is reported when a window's mean moves significantly.

>>> monitor = DriftMonitor(min_examples=0)
>>> signals = [monitor.credit_error(0.1) for _ in range(2000)] + [monitor.credit_error(0.9) for _ in range(500)]
>>> drift = next(s for s in signals if s is not None)
>>> drift.model, drift.signal, drift.mean_after > drift.mean_before
('credit', 'error', True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from river._river_rust.drift import AdaptiveWindowing


@dataclass(frozen=True)
class Drift:
    """A significant change in the mean of a monitored signal."""

    model: Literal["credit", "anomaly"]
    signal: Literal["error", "score"]
    mean_before: float
    mean_after: float
    examples_seen: int


class Adwin:
    """River's ``drift.ADWIN`` with its default settings: the same Rust window that class wraps,
    without importing ``river.drift`` (whose KSWIN loads SciPy, ~70 MB per worker). After a
    drift, the next value starts a new window, as river's does.

    >>> window = Adwin(delta=0.002)
    >>> [window.update(v) for v in [0.0] * 1000 + [1.0] * 100].index(True)
    1023
    """

    def __init__(self, delta: float) -> None:
        self.delta = delta
        self.drift_detected = False
        self._window = self._new_window()

    def _new_window(self) -> AdaptiveWindowing:
        return AdaptiveWindowing(delta=self.delta, clock=32, max_buckets=5, min_window_length=5, grace_period=10)

    @property
    def estimation(self) -> float:
        """The mean of the values in the window (0 when empty)."""
        width = self._window.get_width()
        return self._window.get_total() / width if width else 0.0

    def update(self, value: float) -> bool:
        """Add ``value``; returns whether the window's mean has drifted."""
        if self.drift_detected:
            self._window = self._new_window()
        self.drift_detected = self._window.update(value)
        return self.drift_detected


class DriftMonitor:
    """ADWIN over the credit model's absolute error (a rise means the model is getting worse;
    a fall is just the model learning) and over the calibrated anomaly score of incoming orders
    (0.5 on average while orders look like recent ones; a move either way means the order
    stream changed). Nothing is reported before ``min_examples`` of that model, while the
    models are still warming up.
    """

    def __init__(self, delta: float = 0.002, min_examples: int = 500) -> None:
        self.delta = delta
        self.min_examples = min_examples
        self._error = Adwin(delta)
        self._score = Adwin(delta)
        self._errors_seen = 0
        self._scores_seen = 0

    def credit_error(self, error: float) -> Drift | None:
        """Observe ``|label - predicted probability|`` of one labelled invoice."""
        self._errors_seen += 1
        before = self._error.estimation
        self._error.update(error)
        if self._error.drift_detected and self._errors_seen > self.min_examples and self._error.estimation > before:
            return Drift("credit", "error", round(before, 4), round(self._error.estimation, 4), self._errors_seen)
        return None

    def anomaly_score(self, score: float) -> Drift | None:
        """Observe the calibrated anomaly score of one order, before it is learned."""
        self._scores_seen += 1
        before = self._score.estimation
        self._score.update(score)
        if self._score.drift_detected and self._scores_seen > self.min_examples:
            return Drift("anomaly", "score", round(before, 4), round(self._score.estimation, 4), self._scores_seen)
        return None
