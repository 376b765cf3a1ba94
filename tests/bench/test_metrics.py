"""Detection-quality metrics of the benchmarks: AUC / McClish pAUC and their aggregation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from bench.quality import MAX_FPR, ScoredRecording, auc_pauc, evaluate_scores


def recording(name: str, anomalous: bool, scores: list[float]) -> ScoredRecording:
    return ScoredRecording(name, anomalous, np.asarray(scores, dtype=np.float64))


def test_auc_and_pauc_by_hand() -> None:
    # ROC: (0, .5) -> (.5, .5) -> (.5, 1): AUC .75; area up to FPR .1 is .05, standardised
    # by McClish: (1 + (.05 - .005) / (.1 - .005)) / 2.
    auc, pauc = auc_pauc([False, False, True, True], [0.1, 0.4, 0.35, 0.8])
    assert auc == pytest.approx(0.75)
    assert pauc == pytest.approx((1 + 0.045 / 0.095) / 2)


def test_perfect_and_inverted_rankings() -> None:
    labels = [False, False, False, True, True]
    assert auc_pauc(labels, [1, 2, 3, 4, 5]) == pytest.approx((1.0, 1.0))
    # Fully inverted: AUC 0 and the McClish floor, 0.5 * (1 - min_area / (max - min)).
    floor = 0.5 * (1 - 0.5 * MAX_FPR**2 / (MAX_FPR - 0.5 * MAX_FPR**2))
    assert auc_pauc(labels, [5, 4, 3, 2, 1]) == pytest.approx((0.0, floor))


def test_agrees_with_sklearn_on_random_scores_with_ties() -> None:
    rng = np.random.default_rng(7)
    labels = rng.random(200) < 0.3
    scores = np.round(rng.normal(size=200) + labels, 1)  # rounding makes ties
    auc, pauc = auc_pauc(labels.tolist(), scores.tolist())
    assert auc == pytest.approx(roc_auc_score(labels, scores))
    assert pauc == pytest.approx(roc_auc_score(labels, scores, max_fpr=0.1))
    assert 0.5 < pauc < auc < 1.0


def test_recording_level_uses_mean_and_max_of_each_recording() -> None:
    recordings = [
        recording("n1", False, [1.0, 1.0, 1.0]),
        recording("n2", False, [0.5, 0.5, 5.0]),  # one loud window: mean 2, max 5
        recording("n3", False, [1.5, 1.5, 1.5]),
        recording("a1", True, [3.0, 3.0, 3.0]),
        recording("a2", True, [2.5, 2.5, 2.5]),
        recording("a3", True, [4.0, 0.0, 0.5]),  # mean 1.5, max 4
    ]
    metrics = evaluate_scores(recordings)
    labels = [False, False, False, True, True, True]
    means = [1.0, 2.0, 1.5, 3.0, 2.5, 1.5]
    maxes = [1.0, 5.0, 1.5, 3.0, 2.5, 4.0]
    assert (metrics.level, metrics.n_normal, metrics.n_anomaly) == ("recording", 3, 3)
    assert metrics.auc == pytest.approx(roc_auc_score(labels, means))
    assert metrics.pauc == pytest.approx(roc_auc_score(labels, means, max_fpr=0.1))
    assert metrics.auc_max == pytest.approx(roc_auc_score(labels, maxes))
    assert metrics.pauc_max == pytest.approx(roc_auc_score(labels, maxes, max_fpr=0.1))
    assert metrics.auc != metrics.auc_max


def test_frame_scores_decide_the_recording_score_when_given() -> None:
    # The DCASE baseline scores a clip by its mean over 5-frame vectors, not over windows.
    recordings = [
        ScoredRecording(f"n{i}", False, np.array([9.0]), np.array([0.1 * i, 0.1 * i]))
        for i in range(3)
    ] + [
        ScoredRecording(f"a{i}", True, np.array([0.0]), np.array([1.0 + i, 1.0]))
        for i in range(3)
    ]
    metrics = evaluate_scores(recordings)
    assert metrics.level == "recording"
    assert (metrics.auc, metrics.auc_max) == (1.0, 1.0)


def test_too_few_recordings_fall_back_to_windows() -> None:
    recordings = [
        recording("normal", False, [0.1, 0.2, 0.9]),
        recording("anomaly-1", True, [0.8, 0.3]),
        recording("anomaly-2", True, [0.7]),
    ]
    metrics = evaluate_scores(recordings)
    labels = [False, False, False, True, True, True]
    windows = [0.1, 0.2, 0.9, 0.8, 0.3, 0.7]
    assert (metrics.level, metrics.n_normal, metrics.n_anomaly) == ("window", 3, 3)
    assert metrics.auc == pytest.approx(roc_auc_score(labels, windows))
    assert metrics.pauc == pytest.approx(roc_auc_score(labels, windows, max_fpr=0.1))
    assert metrics.auc_max is None and metrics.pauc_max is None


def test_one_class_only_is_refused() -> None:
    with pytest.raises(ValueError, match="0 anomalous"):
        evaluate_scores([recording("n1", False, [0.1]), recording("n2", False, [0.2])])
