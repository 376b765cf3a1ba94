"""Every algorithm: fit state, ranking, threshold calibration, input checks, bounds."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from pyod.models.ecod import ECOD
from sklearn.exceptions import NotFittedError

from detectors import ALGORITHMS, BaseDetector, InsufficientDataError, build
from detectors.ecod import FrozenECOD
from tests.detectors.conftest import FAST_PARAMS, N_FEATURES, gaussian

NAMES = sorted(ALGORITHMS)
STAT_KEYS = {"mean", "std", "min", "p50", "p95", "p99", "max"}


@pytest.fixture(scope="module")
def normal_train() -> np.ndarray:
    return gaussian(3000, seed=1)


@pytest.fixture(scope="module")
def normal_fresh() -> np.ndarray:
    return gaussian(20_000, seed=2)


@pytest.fixture(scope="module")
def fitted(normal_train: np.ndarray) -> dict[tuple[str, str], BaseDetector]:
    """Each algorithm fitted once per threshold method (q=0.95), shared by the tests."""
    return {
        (name, method): build(name, FAST_PARAMS[name], {"method": method, "q": 0.95}).fit(
            normal_train
        )
        for name in NAMES
        for method in ("quantile", "gamma")
    }


@pytest.mark.parametrize("name", NAMES)
def test_fit_records_learned_state(name: str, fitted: dict, normal_train: np.ndarray) -> None:
    detector = fitted[name, "quantile"]
    assert detector.n_features_in_ == N_FEATURES
    assert np.allclose(detector.scaler_.mean_, normal_train.mean(axis=0), atol=0.2)
    assert detector.model_ is not None
    assert np.isfinite(detector.threshold_)
    assert detector.threshold_method_ == "quantile"
    for stats in (detector.train_score_stats_, detector.holdout_score_stats_):
        assert set(stats) == STAT_KEYS
        assert stats["min"] <= stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]
    assert detector.n_holdout_windows_ == 600
    assert detector.n_train_windows_ == min(2400, detector.max_train)
    assert detector.fit_seconds_ > 0


@pytest.mark.parametrize("name", NAMES)
def test_shifted_windows_score_higher(name: str, fitted: dict, normal_fresh: np.ndarray) -> None:
    detector = fitted[name, "quantile"]
    shifted = gaussian(500, seed=3, shift=3.0)
    normal_scores = detector.decision_function(normal_fresh[:500])
    shifted_scores = detector.decision_function(shifted)
    assert normal_scores.dtype == np.float64
    assert np.median(shifted_scores) > np.quantile(normal_scores, 0.99)
    flagged = detector.predict(shifted)
    assert flagged.dtype == np.bool_
    assert flagged.mean() > 0.95


@pytest.mark.parametrize("method", ["quantile", "gamma"])
@pytest.mark.parametrize("name", NAMES)
def test_threshold_matches_configured_quantile(
    name: str, method: str, fitted: dict, normal_fresh: np.ndarray
) -> None:
    detector = fitted[name, method]
    assert detector.threshold_method_ == method
    rate = float(np.mean(detector.decision_function(normal_fresh) > detector.threshold_))
    print(f"{name} {method}: {rate:.4f} of fresh normal windows above threshold (target 0.05)")
    assert rate == pytest.approx(0.05, abs=0.025)
    assert np.array_equal(
        detector.predict(normal_fresh),
        detector.decision_function(normal_fresh) > detector.threshold_,
    )


def test_default_threshold_flags_about_one_percent_of_normal_windows() -> None:
    detector = build("mahalanobis", {}).fit(gaussian(20_000, seed=14))
    assert detector.threshold_method_ == "quantile"
    assert detector.threshold_q == 0.99
    rate = float(detector.predict(gaussian(50_000, seed=15)).mean())
    assert rate == pytest.approx(0.01, abs=0.004)


@pytest.mark.parametrize("name", NAMES)
def test_scores_do_not_depend_on_batch(name: str, fitted: dict, normal_fresh: np.ndarray) -> None:
    # The service scores streamed windows one by one and backfills in batches.
    detector = fitted[name, "quantile"]
    batch = normal_fresh[:50]
    one_by_one = np.array([detector.decision_function(row[None, :])[0] for row in batch[:5]])
    np.testing.assert_allclose(detector.decision_function(batch)[:5], one_by_one, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_insufficient_data_is_explained(name: str) -> None:
    with pytest.raises(InsufficientDataError) as excinfo:
        build(name, FAST_PARAMS[name]).fit(gaussian(49, seed=0))
    assert excinfo.value.given == 49
    assert excinfo.value.needed == 50
    assert "got 49 training windows, need at least 50" in str(excinfo.value)


def test_knn_needs_more_windows_for_many_neighbours() -> None:
    with pytest.raises(InsufficientDataError) as excinfo:
        build("knn", {"n_neighbors": 50}).fit(gaussian(60, seed=0))
    assert excinfo.value.needed > 60
    build("knn", {"n_neighbors": 50}).fit(gaussian(excinfo.value.needed, seed=0))


@pytest.mark.parametrize("name", NAMES)
def test_dimension_mismatch_names_both_sizes(name: str, fitted: dict) -> None:
    with pytest.raises(ValueError, match=r"X has 12 features.*fitted on 16-dimensional"):
        fitted[name, "quantile"].decision_function(np.zeros((3, 12)))


def test_rejects_non_finite_and_non_2d_input() -> None:
    data = gaussian(100, seed=0)
    data[5, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        build("mahalanobis", {}).fit(data)
    with pytest.raises(ValueError, match="2D"):
        build("mahalanobis", {}).fit(np.zeros(100))
    with pytest.raises(NotFittedError):
        build("mahalanobis", {}).decision_function(np.zeros((1, 4)))


@pytest.mark.parametrize("name", NAMES)
def test_fit_is_deterministic_and_accepts_float32(name: str) -> None:
    data = gaussian(300, seed=4, n_features=8).astype(np.float32)
    probe = gaussian(20, seed=5, n_features=8)
    first = build(name, FAST_PARAMS[name]).fit(data)
    second = build(name, FAST_PARAMS[name]).fit(data)
    np.testing.assert_allclose(first.decision_function(probe), second.decision_function(probe))
    assert first.threshold_ == pytest.approx(second.threshold_)


@pytest.mark.parametrize("name", ["gmm", "knn", "ecod", "iforest"])
def test_large_training_sets_are_subsampled(name: str) -> None:
    detector = build(name, {**FAST_PARAMS[name], "max_train": 500}).fit(gaussian(3000, seed=6))
    assert detector.n_train_windows_ == 500
    assert detector.n_holdout_windows_ == 600


def test_gmm_uses_fewer_components_when_windows_are_scarce() -> None:
    few = build("gmm", {"n_components": 4}).fit(gaussian(100, seed=7))
    many = build("gmm", {"n_components": 4}).fit(gaussian(1200, seed=7))
    assert few.model_.n_components == 1
    assert many.model_.n_components == 4


def test_mahalanobis_shrinks_harder_when_windows_are_few() -> None:
    # Strongly correlated dimensions: Ledoit-Wolf alone would shrink little.
    base = gaussian(60, seed=8, n_features=4)
    data = np.hstack(
        [
            base @ np.random.default_rng(0).normal(size=(4, 64)),
            np.random.default_rng(1).normal(scale=0.01, size=(60, 64)),
        ]
    )
    few = build("mahalanobis", {}).fit(data)
    fit_rows = few.n_train_windows_
    assert few.model_.shrinkage == pytest.approx(128 / (fit_rows + 128))
    assert build("mahalanobis", {"prior_strength": 0.0}).fit(data).model_.shrinkage_ < 0.2
    many = build("mahalanobis", {}).fit(gaussian(5000, seed=8, n_features=8))
    assert many.model_.shrinkage_ < 0.01  # plain Ledoit-Wolf estimate


def test_pca_drops_numerically_empty_components() -> None:
    data = gaussian(200, seed=9)
    collinear = np.hstack([data, data[:, :4] * 2.0])  # 4 redundant dimensions
    detector = build("pca", {}).fit(collinear)
    assert detector.model_.n_components_ == N_FEATURES
    assert detector.holdout_score_stats_["max"] < 1e6


def test_frozen_ecod_reproduces_pyod_for_single_windows() -> None:
    rng = np.random.default_rng(10)
    train = rng.lognormal(size=(400, 6))  # clearly skewed, so skewness signs are stable
    probe = rng.lognormal(size=(10, 6))
    frozen = FrozenECOD().fit(train)
    reference = ECOD().fit(train)
    expected = [reference.decision_function(row[None, :])[0] for row in probe]
    np.testing.assert_allclose(frozen.decision_function(probe), expected, rtol=1e-10)


def test_autoencoder_trains_on_50_windows() -> None:
    start = time.perf_counter()
    detector = build("autoencoder", {}).fit(gaussian(50, seed=11, n_features=128))
    elapsed = time.perf_counter() - start
    print(f"autoencoder 50x128: {elapsed:.2f}s, {detector.n_steps_} steps")
    assert detector.n_steps_ <= detector.max_steps
    assert elapsed < 30
    assert np.isfinite(detector.threshold_)


def test_autoencoder_stops_early_once_loss_converges() -> None:
    # Isotropic noise cannot be compressed through the bottleneck, so the loss plateaus
    # at the discarded variance within a few hundred steps.
    data = np.random.default_rng(13).normal(size=(16_000, 32))
    detector = build("autoencoder", {}).fit(data)
    assert detector.n_steps_ < detector.max_steps
    assert detector.n_steps_ % 25 == 0  # stops only at a convergence check


def test_autoencoder_on_20k_windows_stops_within_bounds() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    threads_before = torch.get_num_threads()
    start = time.perf_counter()
    detector = build("autoencoder", {}).fit(gaussian(20_000, seed=12, n_features=64))
    elapsed = time.perf_counter() - start
    print(f"autoencoder 20000x64: {elapsed:.2f}s, {detector.n_steps_} steps")
    assert detector.n_steps_ <= detector.max_steps
    assert elapsed < 30
    # Training neither consumed the caller's torch RNG stream nor left threads changed.
    assert torch.equal(torch.rand(1), expected_next)
    assert torch.get_num_threads() == threads_before
