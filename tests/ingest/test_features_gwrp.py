"""The built-in logmel-gwrp-v1 embedding (GWRP-pooled log-mel frames): registry entry, shape,
the documented definition checked band by band, and what the two rankings see."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import soundfile as sf

from ingest.features import (
    EMBEDDINGS,
    GWRP_R,
    LOGMEL_GWRP_V1,
    WINDOW_EMBEDDERS,
    EmbeddingSpec,
    embed,
    embed_windows,
    embed_windows_gwrp,
    gwrp_weights,
    is_builtin,
    spec_of,
    to_mono_16k,
)
from tests.ingest.recordings import BLDC_44K_STEREO, DATA_DIR, MIMII_16K_MONO, assert_close

SR = 16000


def _noise(seed: int = 5, level: float = 0.05) -> np.ndarray:
    return level * np.random.default_rng(seed).standard_normal(SR)


def reference_gwrp(window: np.ndarray, r: float = GWRP_R) -> np.ndarray:
    """logmel-gwrp-v1 for one 16 kHz window, written from the module docstring: librosa's
    mel frames of one (unbatched) window, then GWRP band by band with plain sums."""
    mel = librosa.feature.melspectrogram(
        y=window, sr=SR, n_fft=1024, hop_length=512, win_length=1024, window="hann",
        center=False, power=2.0, n_mels=64, fmin=0.0, fmax=8000.0, htk=False, norm="slaney")
    frames = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    assert frames.shape == (64, 30)

    def gwrp(ranked: list[float], decay: float) -> float:
        weights = [decay**i for i in range(len(ranked))]
        return sum(w * x for w, x in zip(weights, ranked, strict=True)) / sum(weights)

    means, loud, quiet = [], [], []
    for band in frames:
        values = [float(v) for v in band]
        means.append(gwrp(values, 1.0))
        loud.append(gwrp(sorted(values, reverse=True), r))
        quiet.append(gwrp(sorted(values), r))
    return np.array(means + loud + quiet)


def test_registry_describes_logmel_gwrp_v1() -> None:
    spec = EMBEDDINGS[LOGMEL_GWRP_V1]
    assert LOGMEL_GWRP_V1 == "logmel-gwrp-v1"
    assert spec == EmbeddingSpec(kind="logmel-gwrp-v1", dim=192, sample_rate=16000,
                                 window_s=1.0, hop_s=1.0)
    assert is_builtin(LOGMEL_GWRP_V1) and spec_of(LOGMEL_GWRP_V1) == spec
    assert WINDOW_EMBEDDERS[LOGMEL_GWRP_V1] is embed_windows_gwrp


@pytest.mark.parametrize("path", [BLDC_44K_STEREO, MIMII_16K_MONO])
def test_real_clips_give_one_finite_float32_vector_per_whole_second(path: str) -> None:
    samples, sr = sf.read(DATA_DIR / path, dtype="float32", always_2d=True)
    vectors = embed(samples, int(sr), LOGMEL_GWRP_V1)
    assert vectors.dtype == np.float32
    assert vectors.shape == (math.floor(samples.shape[0] / sr), 192)
    assert np.isfinite(vectors).all()
    # Per band: quietest-first pooling <= mean <= loudest-first pooling.
    means, loud, quiet = vectors[:, :64], vectors[:, 64:128], vectors[:, 128:]
    assert (quiet <= means + 1e-4).all() and (means <= loud + 1e-4).all()


def test_matches_the_written_definition_band_by_band() -> None:
    t = np.arange(SR) / SR
    windows = np.stack([
        _noise() + 0.2 * np.sin(2 * np.pi * 440.0 * t) * (t > 0.5),  # a tone half the second
        _noise(6) * np.linspace(0.1, 1.0, SR),  # rising noise
    ])
    expected = np.stack([reference_gwrp(w) for w in windows])
    assert_close(embed_windows_gwrp(windows), expected)
    assert_close(embed(windows.reshape(-1), SR, LOGMEL_GWRP_V1), expected)


def test_r_one_is_the_mean_and_the_means_are_logmel_v1s() -> None:
    weights = gwrp_weights(30, 1.0)
    np.testing.assert_allclose(weights, np.full(30, 1 / 30))
    decaying = gwrp_weights(30, GWRP_R)
    assert math.isclose(decaying.sum(), 1.0) and (np.diff(decaying) < 0).all()
    window = _noise() * np.linspace(0.2, 1.0, SR)
    assert_close(reference_gwrp(window, r=1.0)[64:128], reference_gwrp(window)[:64])
    assert_close(reference_gwrp(window, r=1.0)[128:], reference_gwrp(window)[:64])
    assert_close(embed_windows_gwrp(window)[0, :64], embed_windows(window)[0, :64])


def test_a_constant_tone_brackets_its_mean_tightly() -> None:
    t = np.arange(2 * SR) / SR
    vectors = embed(0.5 * np.sin(2 * np.pi * 1000.0 * t), SR, LOGMEL_GWRP_V1)
    band = int(np.argmax(vectors[0, :64]))
    edges = librosa.mel_frequencies(n_mels=66, fmin=0.0, fmax=8000.0)
    assert edges[band] < 1000.0 < edges[band + 2]
    mean, loud, quiet = vectors[:, band], vectors[:, 64 + band], vectors[:, 128 + band]
    assert (quiet <= mean + 1e-4).all() and (mean <= loud + 1e-4).all()
    assert (loud - quiet < 0.1).all()  # a steady level: every frame about the same


def test_a_short_impulse_moves_the_loud_pooling_most_and_the_floor_least() -> None:
    quiet_window = _noise(1, 0.01)
    clicked = quiet_window.copy()
    clicked[8000:8100] += 0.8 * np.hanning(100)  # ~6 ms: two or three of the 30 frames
    before, after = embed_windows_gwrp(np.stack([quiet_window, clicked]))
    change = after - before
    mean, loud, floor = (change[:64].max(), change[64:128].max(), change[128:].max())
    assert loud > 2 * mean and floor < mean


def test_silence_is_the_db_floor_in_all_three_poolings() -> None:
    vectors = embed(np.zeros((2 * 48000, 2), dtype=np.float32), 48000, LOGMEL_GWRP_V1)
    assert vectors.shape == (2, 192)
    assert_close(vectors, -100.0)


def test_streaming_window_by_window_equals_whole_clip() -> None:
    samples, sr = sf.read(DATA_DIR / BLDC_44K_STEREO, dtype="float32", always_2d=True)
    mono = to_mono_16k(samples, int(sr))
    streamed = np.concatenate([embed_windows_gwrp(mono[k * SR:(k + 1) * SR])
                               for k in range(len(mono) // SR)])
    assert_close(streamed, embed(samples, int(sr), LOGMEL_GWRP_V1))


def test_wrong_shapes_are_refused_and_no_windows_give_no_rows() -> None:
    assert embed_windows_gwrp(np.zeros((0, SR))).shape == (0, 192)
    assert embed(np.zeros(SR - 1), SR, LOGMEL_GWRP_V1).shape == (0, 192)
    for bad in (np.zeros(8000), np.zeros((2, SR + 1)), np.zeros((1, 1, SR))):
        with pytest.raises(ValueError, match="16000"):
            embed_windows_gwrp(bad)
