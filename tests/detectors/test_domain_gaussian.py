"""domain_mahalanobis: per-condition means and covariances, scored by the nearest condition.
Synthetic conditions, then a real speed change of a BLDC motor (shared/data/bldc)."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from detectors import registry
from ingest.features import embed
from tests.conftest import DATA_DIR

RNG_SEED = 11


def _two_conditions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """600 windows of a main condition in 6 recordings, 30 of a new one in 1 recording;
    the new one varies along other directions than the main one."""
    rng = np.random.default_rng(RNG_SEED)
    source = rng.normal(0.0, 1.0, (600, 8)) * np.array([3, 1, 1, 1, 1, 1, 1, 0.3])
    target = rng.normal(6.0, 0.5, (30, 8))
    conditions = np.array(["1500rpm"] * 600 + ["1800rpm"] * 30)
    groups = np.concatenate([np.repeat(np.arange(6), 100), np.full(30, 6)])
    return np.vstack([source, target]), conditions, groups


def test_a_few_shot_condition_is_normal_and_faults_still_stand_out() -> None:
    X, conditions, groups = _two_conditions()
    detector = registry.build("domain_mahalanobis").fit(X, conditions=conditions,
                                                        groups=groups)
    assert detector.model_.means.shape == (2, 8)
    rng = np.random.default_rng(RNG_SEED + 1)
    new_normal = detector.decision_function(rng.normal(6.0, 0.5, (50, 8)))
    fault_windows = rng.normal(3.0, 1.0, (50, 8))
    fault = detector.decision_function(fault_windows)
    assert np.mean(new_normal > detector.threshold_) < 0.1
    assert np.mean(fault > detector.threshold_) > 0.9
    # Without conditions one Gaussian spans both, and its threshold (calibrated with the
    # new condition's recording held out) lets most faults through.
    pooled = registry.build("domain_mahalanobis").fit(X, groups=groups)
    assert pooled.model_.means.shape == (1, 8)
    assert np.mean(pooled.predict(fault_windows)) < 0.5


def test_scales_put_conditions_of_different_spread_on_one_footing() -> None:
    """A tight target and a loose source: scaled, a typical window of either scores ~1."""
    X, conditions, _ = _two_conditions()
    scaled = registry.build("domain_mahalanobis").fit(X, conditions=conditions)
    raw = registry.build("domain_mahalanobis", {"scale_per_condition": False}).fit(
        X, conditions=conditions)
    assert np.all(raw.model_.scales == 1.0)
    Z = scaled.scaler_.transform(X)
    by_condition = [np.median(scaled.model_.score(Z[conditions == c]))
                    for c in ("1500rpm", "1800rpm")]
    assert all(0.7 < m < 1.4 for m in by_condition), by_condition


def test_one_window_of_a_condition_borrows_the_main_covariance() -> None:
    rng = np.random.default_rng(RNG_SEED)
    X = np.vstack([rng.normal(0.0, 1.0, (200, 4)), [[8.0, 8.0, 8.0, 8.0]]])
    conditions = ["usual"] * 200 + ["new"]
    detector = registry.build("domain_mahalanobis").fit(X, conditions=conditions)
    model = detector.model_
    np.testing.assert_allclose(model.precisions[1], model.precisions[0])
    assert model.scales[1] == model.scales[0]
    near_new = detector.decision_function([[8.0, 8.0, 8.0, 8.0]])[0]
    assert near_new < detector.threshold_


def _windows(path: str) -> np.ndarray:
    samples, sr = sf.read(DATA_DIR / "bldc" / path, dtype="float32", always_2d=True)
    halves = [embed(samples, sr), embed(samples[sr // 2:], sr)]  # windows every 0.5 s
    return np.vstack(halves)


def test_bldc_speed_change_with_one_clip_of_the_new_speed() -> None:
    """Train on M1 healthy at 1400-1650 rpm plus one healthy 1750 rpm clip as a new
    condition; healthy 1850-2000 rpm stays below the propeller fault at those speeds."""
    def clip(state: str, rpm: int) -> np.ndarray:
        return _windows(f"bldc_motor__{state}_M1_{rpm}rpm.wav")

    low = [clip("healthy", rpm) for rpm in (1400, 1450, 1550, 1650)]
    high = clip("healthy", 1750)
    X = np.vstack([*low, high])
    conditions = ["low"] * sum(w.shape[0] for w in low) + ["high"] * high.shape[0]
    detector = registry.build("domain_mahalanobis").fit(X, conditions=conditions)
    healthy = np.concatenate([detector.decision_function(clip("healthy", rpm))
                              for rpm in (1850, 2000)])
    fault = np.concatenate([detector.decision_function(clip("propeller", rpm))
                            for rpm in (1750, 1850)])
    # Every fault window scores above the typical healthy window, most above all of them.
    assert fault.min() > np.median(healthy)
    assert np.mean(fault > healthy.max()) > 0.8
