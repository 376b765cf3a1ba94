"""domain_nn (nearest of source k-means centres and target windows) and calibration on
whole recordings."""

from __future__ import annotations

import numpy as np

from detectors import registry

RNG_SEED = 7


def _two_conditions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """600 windows of a main condition in 6 recordings, 30 of a new one in 1 recording."""
    rng = np.random.default_rng(RNG_SEED)
    source = rng.normal(0.0, 1.0, (600, 8))
    target = rng.normal(5.0, 0.3, (30, 8))
    conditions = np.array(["1500rpm"] * 600 + ["1800rpm"] * 30)
    groups = np.concatenate([np.repeat(np.arange(6), 100), np.full(30, 6)])
    return np.vstack([source, target]), conditions, groups


def test_few_shot_condition_is_normal_and_faults_still_stand_out() -> None:
    X, conditions, groups = _two_conditions()
    detector = registry.build("domain_nn").fit(X, conditions=conditions, groups=groups)
    rng = np.random.default_rng(RNG_SEED + 1)
    new_normal = detector.decision_function(rng.normal(5.0, 0.3, (50, 8)))
    fault = detector.decision_function(rng.normal(2.5, 1.0, (50, 8)))
    assert np.mean(new_normal > detector.threshold_) < 0.1
    assert np.mean(fault > detector.threshold_) > 0.9
    # The new condition's one recording stays in the model: never held out.
    assert detector.n_train_recordings_ == 7 and detector.n_holdout_recordings_ == 6


def test_without_conditions_the_few_windows_are_only_centres() -> None:
    X, conditions, _ = _two_conditions()
    with_conditions = registry.build("domain_nn").fit(X, conditions=conditions)
    pooled = registry.build("domain_nn").fit(X)
    assert with_conditions.model_.references.shape[0] == 16 + 30
    assert pooled.model_.references.shape[0] == 16


def test_other_detectors_ignore_conditions() -> None:
    X, conditions, _ = _two_conditions()
    a = registry.build("ecod").fit(X, conditions=conditions)
    b = registry.build("ecod").fit(X)
    assert a.threshold_ == b.threshold_


def test_recording_calibration_holds_for_a_shifted_normal_day() -> None:
    """Each recording has its own offset (another day's background): a threshold fitted on
    windows of recordings the model also saw is exceeded by a new day's normal recording;
    one calibrated on unseen recordings is not."""
    rng = np.random.default_rng(RNG_SEED)
    offsets = rng.normal(0.0, 1.5, (12, 8))
    X = np.vstack([rng.normal(0.0, 1.0, (60, 8)) + o for o in offsets])
    groups = np.repeat(np.arange(12), 60)
    by_window = registry.build("domain_nn").fit(X)
    by_recording = registry.build("domain_nn").fit(X, groups=groups)
    assert by_recording.threshold_ > by_window.threshold_
    assert by_recording.n_holdout_recordings_ == 12 and by_recording.n_train_recordings_ == 12
    assert by_recording.threshold_confidence_ == "medium"  # 720 windows, 12 recordings
    assert by_window.threshold_confidence_ == "low" and by_window.n_holdout_recordings_ == 0
    days = [rng.normal(0.0, 1.0, (60, 8)) + rng.normal(0.0, 1.5, 8) for _ in range(30)]
    fired = [np.mean(d.decision_function(day) > d.threshold_) >= 0.6
             for d in (by_window, by_recording) for day in days]
    assert sum(fired[30:]) < sum(fired[:30])
    assert sum(fired[30:]) <= 1


def test_conditions_and_groups_need_one_label_per_window() -> None:
    X, _, _ = _two_conditions()
    for kwargs in ({"conditions": ["a"] * 3}, {"groups": np.zeros(5)}):
        try:
            registry.build("domain_nn").fit(X, **kwargs)
        except ValueError as exc:
            assert "one entry per window (630)" in str(exc)
        else:
            raise AssertionError(f"{kwargs} accepted")
