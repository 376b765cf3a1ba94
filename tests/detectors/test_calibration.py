"""Held-out split and threshold fitting."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.calibration import (
    MAX_HOLDOUT,
    fit_threshold,
    holdout_split,
    score_stats,
    windows_needed,
)


@pytest.mark.parametrize("n_rows", [50, 77, 1000, 123_457])
def test_split_holds_out_a_fifth_in_contiguous_blocks(n_rows: int) -> None:
    fit_rows, holdout_rows = holdout_split(n_rows, seed=0)
    assert np.intersect1d(fit_rows, holdout_rows).size == 0
    if n_rows * 0.2 <= MAX_HOLDOUT:
        assert np.union1d(fit_rows, holdout_rows).size == n_rows
        assert holdout_rows.size == pytest.approx(0.2 * n_rows, rel=0.15)
        # 10 held-out blocks out of 50: at most 10 contiguous runs.
        runs = 1 + np.count_nonzero(np.diff(holdout_rows) > 1)
        assert runs <= 10
    else:
        assert holdout_rows.size == MAX_HOLDOUT
        assert fit_rows.size == pytest.approx(0.8 * n_rows, rel=0.05)


def test_split_is_deterministic_per_seed() -> None:
    first, second = holdout_split(5000, seed=1), holdout_split(5000, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[1], holdout_split(5000, seed=2)[1])


@pytest.mark.parametrize("fit_rows", [10, 40, 51, 200])
def test_windows_needed_is_the_smallest_sufficient_count(fit_rows: int) -> None:
    needed = windows_needed(fit_rows)
    for seed in range(20):
        assert holdout_split(needed, seed)[0].size >= fit_rows


def test_quantile_threshold_is_the_empirical_quantile() -> None:
    scores = np.random.default_rng(0).normal(size=1000)
    assert fit_threshold(scores, "quantile", 0.95) == (np.quantile(scores, 0.95), "quantile")


def test_gamma_threshold_handles_negative_scores() -> None:
    scores = np.random.default_rng(1).gamma(4.0, size=20_000) - 10.0
    threshold, used = fit_threshold(scores, "gamma", 0.99)
    assert used == "gamma"
    assert threshold == pytest.approx(np.quantile(scores, 0.99), abs=0.3)


@pytest.mark.parametrize(
    "scores",
    [np.ones(200), np.arange(3.0), 5.0 - np.random.default_rng(2).gamma(2.0, size=2000)],
    ids=["constant", "too-few", "left-skewed"],
)
def test_gamma_falls_back_to_quantile_when_it_cannot_fit(scores: np.ndarray) -> None:
    threshold, used = fit_threshold(scores, "gamma", 0.99)
    assert used == "quantile"
    assert threshold == np.quantile(scores, 0.99)


def test_score_stats_are_plain_floats() -> None:
    stats = score_stats(np.arange(101, dtype=np.float64))
    assert stats == {
        "mean": 50.0,
        "std": pytest.approx(29.15, abs=0.01),
        "min": 0.0,
        "p50": 50.0,
        "p95": 95.0,
        "p99": 99.0,
        "max": 100.0,
    }
    assert all(type(value) is float for value in stats.values())
