"""The front-ends, score standardisation and clip attributes of bench.robust_features."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bench.common import SR, windows_at_hop
from bench.robust_features import (
    FEATURES,
    attributes,
    ensemble_scores,
    level_centred,
    standardised,
)
from ingest.features import embed_windows


def _tones(n: int = 3) -> np.ndarray:
    t = np.arange(SR) / SR
    rng = np.random.default_rng(3)
    return np.stack([0.3 * np.sin(2 * np.pi * (200 + 150 * k) * t)
                     + 0.01 * rng.normal(size=SR) for k in range(n)])


def test_windows_at_hop_frames_like_the_service_and_overlaps() -> None:
    y = np.arange(int(2.5 * SR), dtype=np.float64)
    assert windows_at_hop(y, 1.0).shape == (2, SR)
    half = windows_at_hop(y, 0.5)
    assert half.shape == (4, SR)
    assert half[1, 0] == SR // 2
    assert windows_at_hop(y[: SR - 1], 1.0).shape == (0, SR)


@pytest.mark.parametrize("name", sorted(FEATURES))
def test_every_front_end_gives_one_finite_vector_per_window(name: str) -> None:
    vectors = FEATURES[name](_tones())
    assert vectors.shape[0] == 3
    assert vectors.shape[1] in (64, 128, 192)
    assert np.isfinite(vectors).all()


def test_level_centred_ignores_gain_that_logmel_sees() -> None:
    frames = _tones()
    louder = frames * 4.0  # +12 dB
    assert not np.allclose(embed_windows(frames), embed_windows(louder), atol=1e-3)
    np.testing.assert_allclose(level_centred(frames), level_centred(louder), atol=1e-3)


def test_scores_are_standardised_by_the_held_out_normal_spread() -> None:
    detector = SimpleNamespace(holdout_score_stats_={"p50": 2.0, "p95": 6.0})
    np.testing.assert_allclose(standardised(detector, np.array([2.0, 6.0, 10.0])),
                               [0.0, 1.0, 2.0])
    np.testing.assert_allclose(ensemble_scores([np.array([0.0, 2.0]), np.array([1.0, 4.0])]),
                               [0.5, 3.0])


def test_attributes_come_from_the_dcase_file_name() -> None:
    path = "dcase2023/x__gearbox_test_section_00_target_test_anomaly_0040_volt_1.5_wt_130.wav"
    assert attributes(path) == "volt 1.5 wt 130"
    assert attributes("bldc/whatever.wav") == "—"
