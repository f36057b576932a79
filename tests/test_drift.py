"""The drift monitor's window is river's ADWIN without importing ``river.drift``."""

import random

from river import drift

from detectors.drift import Adwin, DriftMonitor


def test_adwin_flags_the_same_drifts_and_means_as_rivers_adwin() -> None:
    rng = random.Random(7)
    values = [rng.gauss(mean, 0.2) for mean in (0.1, 0.6, 0.2, 0.9) for _ in range(1500)]
    ours, rivers = Adwin(delta=0.002), drift.ADWIN(delta=0.002)
    flagged = []
    for i, value in enumerate(values):
        ours.update(value)
        rivers.update(value)
        assert ours.drift_detected == rivers.drift_detected, i
        assert ours.estimation == rivers.estimation, i
        if ours.drift_detected:
            flagged.append(i)
    assert len(flagged) >= 3  # each shift of the mean is caught


def test_a_worsening_credit_model_is_reported_and_an_improving_one_is_not() -> None:
    worse, better = DriftMonitor(min_examples=100), DriftMonitor(min_examples=100)
    worse_drifts = [worse.credit_error(e) for e in [0.1] * 1000 + [0.6] * 300]
    better_drifts = [better.credit_error(e) for e in [0.6] * 1000 + [0.1] * 300]
    reported = [d for d in worse_drifts if d is not None]
    assert reported and reported[0].mean_after > reported[0].mean_before
    assert all(d is None for d in better_drifts)
