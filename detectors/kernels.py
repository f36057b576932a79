"""The detectors' compiled loops, built ahead of time into the extension module
``detectors._kernels`` when salesguard is installed (``setup.py``: numba's ``pycc``), so that a
worker runs them without importing numba — numba, llvmlite and numba's compiler cost a worker
~145 MB of memory and ~1 s of start-up, when only these loops need it.

This module is the source: it needs numba (a build dependency). The functions it exports are
those the models call, with the signatures that fix their argument types; the helpers they call
take their types from them. Imported, every function is a numba JIT function compiled on first
call, which is how the tests check that the built module is the same code.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.pycc import CC

cc = CC("_kernels")


# --- reason codes: the positions of the largest values ---------------------------------------

@njit
def largest_above(values, floor, positions):  # type: ignore[no-untyped-def]
    """Fill ``positions`` with the indices of the largest ``values`` above ``floor``, largest
    first (the earlier of equal values first); returns how many were filled. Explaining a score
    costs a loop over a dozen numbers and no allocation.

    >>> positions = np.empty(2, dtype=np.int64)
    >>> kept = largest_above(np.array([0.5, -1.0, 2.0, 0.5]), 0.0, positions)
    >>> positions[:kept].tolist()
    [2, 0]
    """
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


# --- rolling rank (detectors.rolling_rank) ---------------------------------------------------

# ``tree`` has one slot per bin of [0, 1] (a power of two; the Fenwick tree of the bin counts).

@njit
def _bin(value, bins):  # type: ignore[no-untyped-def]
    return min(max(int(value * bins), 0), bins - 1)


@njit
def _below(tree, bin_):  # type: ignore[no-untyped-def]
    """How many counted values are in bins below ``bin_``."""
    total, i = 0, bin_
    while i > 0:
        total += tree[i - 1]
        i -= i & -i
    return total


@njit
def _count(tree, bin_, delta):  # type: ignore[no-untyped-def]
    i = bin_ + 1
    while i <= tree.shape[0]:
        tree[i - 1] += delta
        i += i & -i


@cc.export("rank", "float64(int32[::1], int64, float64)")
@njit
def rank(tree, size, value):  # type: ignore[no-untyped-def]
    return _below(tree, _bin(value, tree.shape[0])) / size if size else 0.5


@cc.export("ranks", "float64[::1](int32[::1], int64, float64[::1])")
@njit
def ranks(tree, size, values):  # type: ignore[no-untyped-def]
    out = np.empty(values.shape[0])
    for i in range(values.shape[0]):
        out[i] = rank(tree, size, values[i])
    return out


@cc.export("rank_add", "void(int32[::1], int32[::1], int64[::1], float64)")
@njit
def rank_add(tree, ring, position, value):  # type: ignore[no-untyped-def]
    """Count ``value``; when the ring is full, forget the value it replaces.
    ``position`` = [values added so far]."""
    slot = position[0] % ring.shape[0]
    if position[0] >= ring.shape[0]:
        _count(tree, ring[slot], -1)
    ring[slot] = _bin(value, tree.shape[0])
    _count(tree, ring[slot], 1)
    position[0] += 1


# --- half-space trees (detectors.hst) --------------------------------------------------------

_ROW, _MATRIX, _INDEX = "float64[::1]", "float64[:, ::1]", "int64[:, ::1]"


@njit
def _hst_scale(x, lows, highs, margin):  # type: ignore[no-untyped-def]
    out = np.empty_like(x)
    span = 1.0 - 2.0 * margin
    for i in range(x.shape[0]):
        d = highs[i] - lows[i]
        if d != 0.0:
            out[i] = margin + span * (x[i] - lows[i]) / d
        elif margin == 0.0:
            out[i] = 0.0  # river's min-max scaler
        else:  # one value seen so far: it sits in the middle, any other value outside
            out[i] = 0.5 if x[i] == lows[i] else (1.0 - margin / 2 if x[i] > lows[i] else margin / 2)
    return out


@njit
def _hst_child(scaled, t, node, features, thresholds, l_mass):  # type: ignore[no-untyped-def]
    """The child of ``node`` in tree ``t`` that ``scaled`` goes down to (heap layout: children of
    n are 2n+1 and 2n+2); a missing value follows the branch more rows took, as in river."""
    value = scaled[features[t, node]]
    left = 2 * node + 1
    if math.isnan(value):
        return left + 1 if l_mass[t, left] < l_mass[t, left + 1] else left
    return left if value < thresholds[t, node] else left + 1


@cc.export("hst_score", f"float64({_ROW}, {_ROW}, {_ROW}, float64, {_INDEX}, {_MATRIX}, {_MATRIX}, {_MATRIX}, "
                        "int64, float64)")
@njit
def hst_score(x, lows, highs, margin, features, thresholds, r_mass, l_mass, height, size_limit):  # type: ignore[no-untyped-def]
    scaled = _hst_scale(x, lows, highs, margin)
    score = 0.0
    for t in range(features.shape[0]):
        node, depth_pow, stopped = 0, 1, False
        for _ in range(height):
            r = r_mass[t, node]
            score += r * depth_pow
            if r < size_limit:
                stopped = True
                break
            node = _hst_child(scaled, t, node, features, thresholds, l_mass)
            depth_pow <<= 1
        if not stopped:
            score += r_mass[t, node] * depth_pow
    return score


@cc.export("hst_score_rows", f"float64[::1]({_MATRIX}, {_ROW}, {_ROW}, float64, {_INDEX}, {_MATRIX}, {_MATRIX}, "
                             f"{_MATRIX}, int64, float64)")
@njit
def hst_score_rows(rows, lows, highs, margin, features, thresholds, r_mass, l_mass, height, size_limit):  # type: ignore[no-untyped-def]
    out = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        out[i] = hst_score(rows[i], lows, highs, margin, features, thresholds, r_mass, l_mass, height, size_limit)
    return out


@cc.export("hst_learn", f"void({_ROW}, {_ROW}, {_ROW}, float64, {_INDEX}, {_MATRIX}, {_MATRIX}, int64)")
@njit
def hst_learn(x, lows, highs, margin, features, thresholds, l_mass, height):  # type: ignore[no-untyped-def]
    for i in range(x.shape[0]):
        if not math.isnan(x[i]):
            lows[i] = min(lows[i], x[i])
            highs[i] = max(highs[i], x[i])
    scaled = _hst_scale(x, lows, highs, margin)
    for t in range(features.shape[0]):
        node = 0
        for _ in range(height):
            l_mass[t, node] += 1.0
            node = _hst_child(scaled, t, node, features, thresholds, l_mass)
        l_mass[t, node] += 1.0


# --- anomaly explanations (detectors.anomaly) ------------------------------------------------

@njit
def _zscores(row, moments):  # type: ignore[no-untyped-def]
    """|z-score| of each value against the running moments; -1 where unknown."""
    z = np.full(row.shape[0], -1.0)
    for i in range(row.shape[0]):
        count = moments[0, i]
        if count >= 2 and not math.isnan(row[i]):
            spread = math.sqrt(moments[2, i] / (count - 1))
            z[i] = abs(row[i] - moments[1, i]) / (spread if spread > 0 else 1e-9)
    return z


@cc.export("welford", "void(float64[::1], float64[:, ::1])")
@njit
def welford(row, moments):  # type: ignore[no-untyped-def]
    for i in range(row.shape[0]):
        value = row[i]
        if not math.isnan(value):
            moments[0, i] += 1.0
            delta = value - moments[1, i]
            moments[1, i] += delta / moments[0, i]
            moments[2, i] += delta * (value - moments[1, i])


@njit
def _strongest(row, moments, positions, distances):  # type: ignore[no-untyped-def]
    """Fill ``positions`` with the features of the largest known |z-scores|, largest first, and
    ``distances`` with those |z-scores| (to 2 decimals); returns how many were filled."""
    z = _zscores(row, moments)
    kept = largest_above(z, -1.0, positions)  # unknown ones are -1
    for k in range(kept):
        distances[k] = round(z[positions[k]], 2)
    return kept


@cc.export("strongest_rows", "int64[::1](float64[:, ::1], int64[::1], float64[:, ::1], int64[:, ::1], float64[:, ::1])")
@njit
def strongest_rows(rows, chosen, moments, positions, distances):  # type: ignore[no-untyped-def]
    """:func:`_strongest` of the ``chosen`` rows, into the rows of ``positions`` and ``distances``."""
    kept = np.empty(chosen.shape[0], dtype=np.int64)
    for k in range(chosen.shape[0]):
        kept[k] = _strongest(rows[chosen[k]], moments, positions[k], distances[k])
    return kept


# --- late-payment model (detectors.late_payment) ----------------------------------------------

#: river's LogisticRegression defaults that this model keeps: the intercept's learning rate.
_INTERCEPT_LR = 0.01

# Arrays of the model's state (see LatePaymentModel._state) and of one encoded row:
# regression: weights[t] and scaler moments[count|mean|var, t] per term t (number or one-hot);
# bands of a numeric term: edges[t, :n] and banding[first cell|n, t] (first cell -1: no bins);
# scorecard: cells[bad|good|woe, c] per cell c (a feature's band, category or "missing"),
# cell_feature[c], iv_weight[f] per scorecard feature f; totals = [intercept, bad, good].
# A row is idx = its numbers' terms, then its one-hot terms, then the cells of its categories and
# missing values; values = its numbers. A row's scorecard terms are one per number (0 without
# bins), then one per cell of idx.
_STATE_ARGS = ("float64[::1], float64[:, ::1], float64[:, ::1], int64[:, ::1], float64[::1], float64[:, ::1], "
               "int64[::1], float64[::1]")
_SIGNATURE_ARGS = f"int64[::1], float64[::1], int64, int64, {_STATE_ARGS}"


@njit
def _regression_raw(idx, values, n_numbers, n_onehot, weights, moments, intercept):  # type: ignore[no-untyped-def]
    raw = intercept
    for j in range(n_numbers):
        variance = moments[2, idx[j]]
        if variance > 0.0:
            raw += weights[idx[j]] * (values[j] - moments[1, idx[j]]) / math.sqrt(variance)
    for j in range(n_numbers, n_numbers + n_onehot):
        raw += weights[idx[j]]
    return raw


@njit
def _band_cell(term, value, edges, banding):  # type: ignore[no-untyped-def]
    """The cell of ``value``'s band for a numeric term (bisect right: a value on an edge is in
    the band above), -1 when the term has no bins."""
    first = banding[0, term]
    if first < 0:
        return -1
    band = 0
    while band < banding[1, term] and edges[term, band] <= value:
        band += 1
    return first + band


@njit
def _late_payment_explain(idx, values, n_numbers, n_onehot, weights, moments, edges, banding, totals, cells,  # type: ignore[no-untyped-def]
                          cell_feature, iv_weight, reason_features, reason_terms):
    """The late-payment probability of one encoded row, and how many reasons it has: the
    scorecard features of its largest positive terms, largest first, written to
    ``reason_features`` with their terms (to 4 decimals) in ``reason_terms``."""
    terms = np.empty(idx.shape[0] - n_onehot)
    features = np.empty(idx.shape[0] - n_onehot, dtype=np.int64)
    raw = _regression_raw(idx, values, n_numbers, n_onehot, weights, moments, totals[0])
    if raw < -30.0:  # river's sigmoid
        regression = 0.0
    elif raw > 30.0:
        regression = 1.0
    else:
        regression = 1.0 / (1.0 + math.exp(-raw))
    evidence = 0.0
    for j in range(terms.shape[0]):
        cell = _band_cell(idx[j], values[j], edges, banding) if j < n_numbers else idx[j + n_onehot]
        features[j] = cell_feature[cell] if cell >= 0 else -1
        terms[j] = iv_weight[features[j]] * cells[2, cell] if cell >= 0 else 0.0
        evidence += terms[j]
    scorecard = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, evidence))))
    kept = largest_above(terms, 0.0, reason_features)
    for k in range(kept):
        reason_terms[k] = round(terms[reason_features[k]], 4)
        reason_features[k] = features[reason_features[k]]
    return 0.5 * (scorecard + regression), kept


@cc.export("late_payment_explain_rows", f"Tuple((float64[::1], int64[::1]))(int64[::1], float64[::1], int64[:, ::1], "
                                        f"{_STATE_ARGS}, int64[:, ::1], float64[:, ::1])")
@njit
def late_payment_explain_rows(idx, values, shape, weights, moments, edges, banding, totals, cells, cell_feature,  # type: ignore[no-untyped-def]
                              iv_weight, reason_features, reason_terms):
    """:func:`_late_payment_explain` of several rows stored one after the other: row i is
    ``idx[shape[i, 0]:shape[i + 1, 0]]``, ``values[shape[i, 1]:shape[i + 1, 1]]`` with
    ``shape[i + 1, 2]`` numbers and ``shape[i + 1, 3]`` one-hots; its reasons go to row i of
    ``reason_features`` / ``reason_terms``."""
    n = shape.shape[0] - 1
    p_late, kept = np.empty(n), np.empty(n, dtype=np.int64)
    for i in range(n):
        p_late[i], kept[i] = _late_payment_explain(
            idx[shape[i, 0]:shape[i + 1, 0]], values[shape[i, 1]:shape[i + 1, 1]], shape[i + 1, 2], shape[i + 1, 3],
            weights, moments, edges, banding, totals, cells, cell_feature, iv_weight, reason_features[i],
            reason_terms[i])
    return p_late, kept


@njit
def _derive_scorecard(cells, cell_feature, iv_weight, totals, n_features, prior):  # type: ignore[no-untyped-def]
    """WoE of every cell: log-odds of "late" among rows in it, minus the overall log-odds, pulled
    towards 0 by ``prior`` rows' worth of the overall rate. Weight of every feature:
    sqrt(IV / mean IV), so features that separate late from prompt payers weigh more."""
    bad, good = totals[1], totals[2]
    rate = (bad + 1.0) / (bad + good + 2.0)
    base_log_odds = math.log(rate / (1.0 - rate))
    iv = np.zeros(n_features)
    for c in range(cell_feature.shape[0]):
        if cells[0, c] + cells[1, c] == 0.0:
            continue  # a free slot (or a cell never learned)
        cells[2, c] = math.log((cells[0, c] + prior * rate) / (cells[1, c] + prior * (1.0 - rate))) - base_log_odds
        p_bad, p_good = (cells[0, c] + 0.5) / (bad + 1.0), (cells[1, c] + 0.5) / (good + 1.0)
        iv[cell_feature[c]] += (p_bad - p_good) * math.log(p_bad / p_good)
    mean = iv.sum() / n_features if n_features else 0.0
    for f in range(n_features):
        iv_weight[f] = math.sqrt(iv[f] / mean) if mean > 0.0 else 1.0


@cc.export("late_payment_learn", f"float64({_SIGNATURE_ARGS}, int64, float64, float64, float64, float64)")
@njit
def late_payment_learn(idx, values, n_numbers, n_onehot, weights, moments, edges, banding, totals, cells, cell_feature,  # type: ignore[no-untyped-def]
           iv_weight, n_features, late, prior, learning_rate, l2):
    """Learn one encoded row with outcome ``late`` (1.0 or 0.0); returns the probability the
    model gave it before learning."""
    before, _ = _late_payment_explain(idx, values, n_numbers, n_onehot, weights, moments, edges, banding, totals, cells,
                         cell_feature, iv_weight, np.empty(0, dtype=np.int64), np.empty(0))
    # the scaler learns the numbers first (river's StandardScaler)
    for j in range(n_numbers):
        t = idx[j]
        moments[0, t] += 1.0
        old_mean = moments[1, t]
        moments[1, t] += (values[j] - old_mean) / moments[0, t]
        moments[2, t] += ((values[j] - old_mean) * (values[j] - moments[1, t]) - moments[2, t]) / moments[0, t]
    # one SGD step of the regression on log loss (river's Log.gradient, labels in {-1, 1})
    raw = _regression_raw(idx, values, n_numbers, n_onehot, weights, moments, totals[0])
    sign = 1.0 if late > 0.0 else -1.0
    z = raw * sign
    gradient = math.exp(-z) * -sign if z > 18.0 else (-sign if z < -18.0 else -sign / (math.exp(z) + 1.0))
    totals[0] -= _INTERCEPT_LR * gradient
    for j in range(n_numbers + n_onehot):
        t = idx[j]
        x = 1.0
        if j < n_numbers:
            variance = moments[2, t]
            x = (values[j] - moments[1, t]) / math.sqrt(variance) if variance > 0.0 else 0.0
        weights[t] -= learning_rate * (gradient * x + l2 * weights[t])
    # the scorecard counts the row's cells, then re-derives every cell's WoE and each feature's IV
    outcome = 0 if late > 0.0 else 1
    for j in range(n_numbers):
        cell = _band_cell(idx[j], values[j], edges, banding)
        if cell >= 0:
            cells[outcome, cell] += 1.0
    for j in range(n_numbers + n_onehot, idx.shape[0]):
        cells[outcome, idx[j]] += 1.0
    totals[1 + outcome] += 1.0
    _derive_scorecard(cells, cell_feature, iv_weight, totals, n_features, prior)
    return before
