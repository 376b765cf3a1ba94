"""Real recordings: BLDC motor M1, healthy vs propeller fault (see shared/data/manifest.csv).

Training uses the healthy M1 clips marked ``train``; held-out normal is the healthy M1
clips marked ``test`` (other rpm settings, so this is a genuine generalisation check);
anomalies are the ``propeller_M1`` clips. Clips are 2-channel at 16 or 44.1 kHz.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from detectors import ALGORITHMS, build

# tests/detectors/<this file> -> repo root -> the shared/ folder laid beside the clone.
DATA_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
SAMPLE_RATE = 16_000


def _local_embed(samples: np.ndarray, sr: int) -> np.ndarray:
    """Fallback log-mel embedding: 1 s windows, 64 mels, per-band mean + std (128 dims)."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    if sr != SAMPLE_RATE:
        mono = librosa.resample(mono, orig_sr=sr, target_sr=SAMPLE_RATE)
    n_windows = mono.shape[0] // SAMPLE_RATE
    windows = mono[: n_windows * SAMPLE_RATE].reshape(n_windows, SAMPLE_RATE)
    mel = librosa.feature.melspectrogram(
        y=windows, sr=SAMPLE_RATE, n_fft=1024, hop_length=512, n_mels=64, center=False
    )
    log_mel = librosa.power_to_db(mel, ref=1.0, top_db=None)
    return np.concatenate([log_mel.mean(axis=-1), log_mel.std(axis=-1)], axis=-1)


def _embedder() -> Callable[[np.ndarray, int], np.ndarray]:
    """The service's own ``ingest.features.embed`` when present, else the local fallback."""
    try:
        from ingest.features import embed
    except ImportError:  # ingest is written concurrently; fall back until it lands
        return _local_embed
    return embed


EMBED = _embedder()


def _clip_windows(path: str) -> np.ndarray:
    """Embeddings of 1 s windows every 0.5 s, in time order.

    Half-overlapping windows (two passes offset by 0.5 s, interleaved) double the ~40
    training windows the four 10 s clips give, past the detectors' 50-window minimum.
    """
    samples, sr = sf.read(DATA_DIR / path, dtype="float32", always_2d=True)
    on_second = EMBED(samples, sr)
    on_half = EMBED(samples[sr // 2 :], sr)
    windows = np.empty((on_second.shape[0] + on_half.shape[0], on_second.shape[1]))
    windows[0::2] = on_second
    windows[1::2] = on_half[: windows[1::2].shape[0]]
    return windows


@pytest.fixture(scope="module")
def bldc_m1() -> dict[str, np.ndarray]:
    with (DATA_DIR / "manifest.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["path"].startswith("bldc/")]
    groups = {
        "train": [r for r in rows if "_healthy_M1_" in r["path"] and r["split"] == "train"],
        "healthy": [r for r in rows if "_healthy_M1_" in r["path"] and r["split"] == "test"],
        "propeller": [r for r in rows if "_propeller_M1_" in r["path"]],
    }
    assert all(len(clips) >= 4 for clips in groups.values()), groups
    assert {r["sample_rate"] for r in groups["train"]} == {"16000", "44100"}
    return {
        group: np.concatenate([_clip_windows(r["path"]) for r in clips])
        for group, clips in groups.items()
    }


def test_embeddings_have_the_expected_shape(bldc_m1: dict[str, np.ndarray]) -> None:
    for windows in bldc_m1.values():
        assert windows.shape[1] == 128
        assert np.isfinite(windows).all()
    assert bldc_m1["train"].shape[0] >= 70


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_propeller_fault_is_flagged_far_more_than_healthy(
    name: str, bldc_m1: dict[str, np.ndarray]
) -> None:
    detector = build(name, {}).fit(bldc_m1["train"])
    healthy_rate = float(detector.predict(bldc_m1["healthy"]).mean())
    propeller_rate = float(detector.predict(bldc_m1["propeller"]).mean())
    print(
        f"{name}: anomaly rate healthy(held-out rpm) {healthy_rate:.2f}, "
        f"propeller {propeller_rate:.2f}, fit {detector.fit_seconds_:.2f}s"
    )
    assert propeller_rate - healthy_rate >= 0.3
    assert propeller_rate >= 0.8
