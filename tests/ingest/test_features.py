"""The built-in logmel-v1 embedding: shape, the documented definition, and the streaming path."""

from __future__ import annotations

import math
import time

import librosa
import numpy as np
import pytest
import soundfile as sf

from ingest.features import EMBEDDINGS, EmbeddingSpec, embed, embed_windows, is_builtin, to_mono_16k
from tests.ingest.recordings import (
    BLDC_16K_STEREO,
    BLDC_44K_STEREO,
    DATA_DIR,
    ESC10_44K_OGG,
    MIMII_16K_MONO,
    assert_close,
)


def read(path: str) -> tuple[np.ndarray, int]:
    samples, sr = sf.read(DATA_DIR / path, dtype="float32", always_2d=True)
    return samples, int(sr)


def reference_logmel(window: np.ndarray) -> np.ndarray:
    """logmel-v1 for one 16 kHz window, written from the module docstring with an explicit
    STFT and filterbank instead of librosa.feature.melspectrogram."""
    frames = librosa.util.frame(window, frame_length=1024, hop_length=512)  # (1024, 30)
    spectrum = np.abs(
        np.fft.rfft(frames * librosa.filters.get_window("hann", 1024)[:, None], axis=0)
    )
    mel = (
        librosa.filters.mel(
            sr=16000, n_fft=1024, n_mels=64, fmin=0.0, fmax=8000.0, htk=False, norm="slaney"
        )
        @ spectrum**2
    )
    log_mel = 10.0 * np.log10(np.maximum(mel, 1e-10))
    return np.concatenate([log_mel.mean(axis=1), log_mel.std(axis=1)])


def test_registry_describes_logmel_v1() -> None:
    spec = EMBEDDINGS["logmel-v1"]
    assert spec == EmbeddingSpec(
        kind="logmel-v1", dim=128, sample_rate=16000, window_s=1.0, hop_s=1.0
    )
    assert (spec.window_samples, spec.hop_samples) == (16000, 16000)
    assert is_builtin("logmel-v1")
    assert not is_builtin("openl3-512")
    with pytest.raises(ValueError, match="logmel-v1"):
        embed(np.zeros(16000), 16000, kind="openl3-512")


@pytest.mark.parametrize("path", [BLDC_44K_STEREO, BLDC_16K_STEREO, MIMII_16K_MONO, ESC10_44K_OGG])
def test_real_clips_give_one_finite_float32_vector_per_whole_second(path: str) -> None:
    samples, sr = read(path)
    vectors = embed(samples, sr)
    assert vectors.dtype == np.float32
    assert vectors.shape == (math.floor(samples.shape[0] / sr), 128)
    assert np.isfinite(vectors).all()
    # Means are dB of real sound, stds are spread over 30 frames: both in plausible ranges.
    assert vectors[:, :64].min() >= -100.0 and vectors[:, :64].max() < 60.0
    assert (vectors[:, 64:] >= 0).all()


def test_matches_the_written_definition() -> None:
    samples, sr = read(BLDC_44K_STEREO)
    mono = librosa.resample(
        samples.astype(np.float64).mean(axis=1), orig_sr=sr, target_sr=16000, res_type="soxr_hq"
    )
    expected = np.stack([reference_logmel(mono[k * 16000 : (k + 1) * 16000]) for k in range(3)])
    assert_close(embed(samples, sr)[:3], expected)


@pytest.mark.parametrize("path", [BLDC_44K_STEREO, ESC10_44K_OGG, MIMII_16K_MONO])
def test_streaming_window_by_window_equals_whole_clip(path: str) -> None:
    samples, sr = read(path)
    whole = embed(samples, sr)
    mono = to_mono_16k(samples, sr)
    streamed = np.concatenate(
        [embed_windows(mono[k * 16000 : (k + 1) * 16000]) for k in range(len(mono) // 16000)]
    )
    assert streamed.shape == whole.shape
    assert_close(streamed, whole)


def test_downmix_is_the_channel_mean_before_resampling() -> None:
    samples, sr = read(BLDC_44K_STEREO)
    mixed = samples.mean(axis=1)
    assert_close(embed(samples, sr), embed(mixed, sr))
    assert_close(embed(mixed[:, None], sr), embed(mixed, sr))


def test_silence_is_the_db_floor_with_zero_spread() -> None:
    vectors = embed(np.zeros((3 * 48000, 2), dtype=np.float32), 48000)
    assert vectors.shape == (3, 128)
    assert_close(vectors[:, :64], -100.0)
    assert_close(vectors[:, 64:], 0.0)


def test_a_pure_tone_lights_up_its_own_mel_band() -> None:
    sr = 22050
    t = np.arange(2 * sr) / sr
    vectors = embed(0.5 * np.sin(2 * np.pi * 1000.0 * t), sr)
    edges = librosa.mel_frequencies(n_mels=66, fmin=0.0, fmax=8000.0)
    band = int(np.argmax(vectors[0, :64]))
    assert edges[band] < 1000.0 < edges[band + 2]


def test_windows_start_at_sample_zero_and_drop_the_partial_tail() -> None:
    rng = np.random.default_rng(7)
    clip = rng.standard_normal(16000 * 3 + 15999).astype(np.float32) * 0.1
    vectors = embed(clip, 16000)
    assert vectors.shape == (3, 128)
    assert_close(vectors[1], embed_windows(clip[16000:32000])[0])
    assert embed(clip[:15999], 16000).shape == (0, 128)


def test_embed_windows_rejects_wrong_shapes() -> None:
    assert embed_windows(np.zeros((0, 16000))).shape == (0, 128)
    for bad in (np.zeros(8000), np.zeros((2, 16001)), np.zeros((1, 1, 16000))):
        with pytest.raises(ValueError, match="16000"):
            embed_windows(bad)
    with pytest.raises(ValueError, match="channels"):
        embed(np.zeros((16000, 1, 1)), 16000)


def test_real_time_factor_on_a_ten_second_clip() -> None:
    samples, sr = read(BLDC_44K_STEREO)
    embed(samples[: sr * 2], sr)  # librosa loads lazily; keep that out of the measurement
    start = time.perf_counter()
    vectors = embed(samples, sr)
    elapsed = time.perf_counter() - start
    duration = samples.shape[0] / sr
    print(
        f"logmel-v1: {duration:.2f} s of 44.1 kHz stereo in {elapsed * 1000:.1f} ms, "
        f"real-time factor {elapsed / duration:.4f}"
    )
    assert vectors.shape[0] == 10
    assert elapsed / duration < 0.1
