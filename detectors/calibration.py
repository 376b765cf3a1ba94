"""Held-out split, threshold fitting and score summaries.

Why a blocked split: consecutive ~1 s windows of a machine are near-duplicates. Holding
out individual shuffled windows would leave each calibration window's twin in the fit
set, making held-out scores look in-sample and the threshold too low. Holding out whole
contiguous blocks, chosen at random across the training range, keeps that leakage small
while still sampling every operating mode (a "last 20 %" split would miss modes that
only occur early). Rows are therefore expected in time order.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray
from scipy import stats

HOLDOUT_FRACTION = 0.2
N_BLOCKS = 50
# A 0.99 quantile from 20k windows has ~200 exceedances: plenty, and it bounds the cost of
# scoring the held-out part with slow scorers such as kNN.
MAX_HOLDOUT = 20_000

IntArray = NDArray[np.intp]
FloatArray = NDArray[np.float64]


def holdout_split(n_rows: int, seed: int) -> tuple[IntArray, IntArray]:
    """Return ``(fit_rows, holdout_rows)``: ~20 % of rows in whole blocks are held out.

    Held-out rows beyond :data:`MAX_HOLDOUT` are dropped rather than returned to the fit
    part, because they are neighbours of calibration windows.
    """
    n_blocks = min(n_rows, N_BLOCKS)
    block_of_row = np.arange(n_rows) * n_blocks // n_rows
    rng = np.random.default_rng(seed)
    n_holdout_blocks = max(1, round(n_blocks * HOLDOUT_FRACTION))
    holdout_blocks = rng.choice(n_blocks, size=n_holdout_blocks, replace=False)
    in_holdout = np.isin(block_of_row, holdout_blocks)
    fit_rows = np.flatnonzero(~in_holdout)
    holdout_rows = np.flatnonzero(in_holdout)
    if holdout_rows.size > MAX_HOLDOUT:
        holdout_rows = np.sort(rng.choice(holdout_rows, size=MAX_HOLDOUT, replace=False))
    return fit_rows, holdout_rows


def windows_needed(fit_rows: int) -> int:
    """Fewest windows whose split leaves at least ``fit_rows`` rows in the fit part."""
    n_rows = fit_rows
    # The held-out part is at most ceil(n / blocks) rows per held-out block; the loop
    # runs a handful of times because that is about a fifth of n.
    while n_rows - _max_holdout_rows(n_rows) < fit_rows:
        n_rows += 1
    return n_rows


def _max_holdout_rows(n_rows: int) -> int:
    n_blocks = min(n_rows, N_BLOCKS)
    return max(1, round(n_blocks * HOLDOUT_FRACTION)) * -(-n_rows // n_blocks)


def subsample_rows(n_rows: int, limit: int, seed: int) -> IntArray:
    """Sorted indices of at most ``limit`` rows drawn uniformly without replacement."""
    if n_rows <= limit:
        return np.arange(n_rows)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_rows, size=limit, replace=False))


def fit_threshold(scores: FloatArray, method: str, q: float) -> tuple[float, str]:
    """Fit the anomaly threshold on held-out normal scores.

    Returns the threshold and the method actually used: ``"gamma"`` falls back to
    ``"quantile"`` when the fit fails or is degenerate.
    """
    if method == "gamma":
        threshold = _gamma_threshold(scores, q)
        if threshold is not None:
            return threshold, "gamma"
    return float(np.quantile(scores, q)), "quantile"


def _gamma_threshold(scores: FloatArray, q: float) -> float | None:
    if scores.size < 5 or not float(np.std(scores)) > 0:
        return None
    # A gamma is always right-skewed: fitted to left-skewed scores it would put the
    # threshold beyond every observed score.
    if not float(stats.skew(scores)) > 0:
        return None
    # The location is fitted too: scores may be negative (iforest) or offset far from
    # zero (ECOD), and a fixed location makes the tail estimate needlessly conservative.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            shape, loc, scale = stats.gamma.fit(scores)
            threshold = float(stats.gamma.ppf(q, shape, loc=loc, scale=scale))
        except (ValueError, RuntimeError, FloatingPointError):
            return None
    if not np.isfinite(threshold) or threshold <= float(np.median(scores)):
        return None
    return threshold


def score_stats(scores: FloatArray) -> dict[str, float]:
    """Summary of a score distribution, stored with the model for drift checks and UI."""
    p50, p95, p99 = np.quantile(scores, [0.5, 0.95, 0.99])
    return {
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores)),
        "min": float(np.min(scores)),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(np.max(scores)),
    }
