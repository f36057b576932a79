"""Reason codes' common step: the positions of the largest values, compiled, so that explaining
a score costs a loop over a dozen numbers and no allocation.

>>> import numpy as np
>>> positions = np.empty(2, dtype=np.int64)
>>> kept = largest_above(np.array([0.5, -1.0, 2.0, 0.5]), 0.0, positions)
>>> positions[:kept].tolist()
[2, 0]
"""

from __future__ import annotations

from numba import njit


@njit("int64(float64[::1], float64, int64[::1])", cache=True)
def largest_above(values, floor, positions):  # type: ignore[no-untyped-def]
    """Fill ``positions`` with the indices of the largest ``values`` above ``floor``, largest
    first (the earlier of equal values first); returns how many were filled."""
    kept = 0
    previous_value, previous_index = 0.0, -1
    for k in range(positions.shape[0]):
        best = -1
        for i in range(values.shape[0]):
            value = values[i]
            if value <= floor:
                continue
            if k > 0 and (value > previous_value or (value == previous_value and i <= previous_index)):
                continue  # already taken: ranks before the previous pick
            if best < 0 or value > values[best]:
                best = i
        if best < 0:
            break
        positions[k] = best
        previous_value, previous_index = values[best], best
        kept += 1
    return kept
