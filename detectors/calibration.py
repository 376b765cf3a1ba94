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


# --- whole recordings ---------------------------------------------------------------------
# Windows of one recording (an upload, a session of streaming) share its day's background,
# microphone placement and machine temperature; windows of another recording do not. A
# threshold calibrated on windows whose recording also trained the model sees none of that
# variation, and a normal recording from another day then crosses it (issue 15: 11 of 21
# windows of a normal fan recording over a threshold calibrated on ~70 windows).
MIN_GROUPS = 3
MAX_FOLDS = 5
# An alert needs k of n windows over the threshold (3 of 5 by default): a recording whose
# 0.6 quantile stays below the threshold has under 2 windows in 5 above it.
RECORDING_QUANTILE = 0.6


def group_folds(groups: NDArray[np.int64], seed: int, keep: NDArray[np.bool_] | None = None
                ) -> list[tuple[IntArray, IntArray]]:
    """``(fit_rows, held_rows)`` per fold: up to :data:`MAX_FOLDS` folds of whole groups.
    Groups with a row in ``keep`` (e.g. the few windows of a new operating condition) are
    never held out: every fold's model needs them."""
    names = np.unique(groups if keep is None else groups[~np.isin(groups, groups[keep])])
    rng = np.random.default_rng(seed)
    n_folds = min(MAX_FOLDS, names.size)
    fold_of = dict(zip(rng.permutation(names).tolist(),
                       np.arange(names.size) % max(n_folds, 1), strict=True))
    folds = []
    for fold in range(n_folds):
        held = np.isin(groups, [g for g, f in fold_of.items() if f == fold])
        folds.append((np.flatnonzero(~held), np.flatnonzero(held)))
    return folds


def recording_bound(scores: FloatArray, groups: NDArray[np.int64], q: float) -> float:
    """The level normal recordings reach, from out-of-recording scores: each recording's
    0.6 quantile (the level 2 windows in 5 exceed), and the ``q`` quantile of a normal
    distribution fitted to those levels across recordings (another day's recording is as
    far from these as they are from each other), but never below the highest level seen."""
    names = np.unique(groups)
    levels = np.array([np.quantile(scores[groups == g], RECORDING_QUANTILE) for g in names])
    if names.size < 2:
        return float(levels.max())
    spread = float(np.std(levels, ddof=1))
    return float(max(levels.max(), levels.mean() + stats.norm.ppf(q) * spread))


def confidence(n_holdout_windows: int, n_holdout_groups: int) -> str:
    """How far the threshold can be trusted: 'high' needs >= 1000 held-out windows from
    >= 5 unseen recordings, 'medium' >= 200 from >= 2; else 'low'."""
    if n_holdout_windows >= 1000 and n_holdout_groups >= 5:
        return "high"
    if n_holdout_windows >= 200 and n_holdout_groups >= 2:
        return "medium"
    return "low"


def encode(labels: object, n_rows: int, what: str) -> NDArray[np.int64] | None:
    """Integer codes of per-row labels (any hashable values), or None when not given."""
    if labels is None:
        return None
    values = np.asarray(labels, dtype=object)
    if values.shape != (n_rows,):
        raise ValueError(f"{what} must have one entry per window ({n_rows}), got shape "
                         f"{values.shape}")
    _, codes = np.unique(values.astype(str), return_inverse=True)
    return np.asarray(codes, dtype=np.int64)
