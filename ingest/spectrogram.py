"""Log-mel spectrograms for people to look at: from stored audio, or (coarse, one column
per window) from the band means of logmel-v1 windows when no audio was kept.

A picture needs no more columns than a screen has pixels: long ranges are pooled in time
(power averaged, then converted to dB) to at most `max_columns`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import librosa
import numpy as np

DISPLAY_MELS = 96
LOGMEL_BANDS = 64  # logmel-v1: 64 band means, then 64 band standard deviations
LOGMEL_RATE = 16000
FLOOR_DB = -120.0


@dataclass(frozen=True, eq=False)
class Spectrogram:
    """`values_db` has one row per frequency (low to high), one column per time."""

    values_db: np.ndarray
    times_s: np.ndarray  # column centres, seconds from the range's start
    frequencies_hz: np.ndarray  # mel band centres
    source: str  # "audio" or "embeddings"


def from_audio(samples: np.ndarray, sample_rate: int, max_columns: int = 1200) -> Spectrogram:
    """Log-mel power (dB re full scale) of mono-mixed float samples."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    n_fft = 1024 if sample_rate <= 24000 else 2048
    hop = n_fft // 2
    if mono.shape[0] < n_fft:
        mono = np.pad(mono, (0, n_fft - mono.shape[0]))
    power = librosa.feature.melspectrogram(
        y=mono.astype(np.float32), sr=sample_rate, n_fft=n_fft, hop_length=hop, center=False,
        n_mels=DISPLAY_MELS, fmin=0.0, fmax=sample_rate / 2)
    times = (np.arange(power.shape[1]) * hop + n_fft / 2) / sample_rate
    power, times = _pool(power, times, max_columns)
    values = librosa.power_to_db(power, ref=1.0, amin=1e-12, top_db=None)
    freqs = librosa.mel_frequencies(n_mels=DISPLAY_MELS, fmin=0.0, fmax=sample_rate / 2)
    return Spectrogram(np.maximum(values, FLOOR_DB), times, freqs, "audio")


def from_logmel_windows(offsets_s: np.ndarray, vectors: np.ndarray, window_s: float,
                        max_columns: int = 1200) -> Spectrogram:
    """The band means of logmel-v1 windows (already dB), one column per window."""
    power = librosa.db_to_power(vectors[:, :LOGMEL_BANDS].T.astype(np.float64))
    power, times = _pool(power, offsets_s + window_s / 2, max_columns)
    values = librosa.power_to_db(power, ref=1.0, amin=1e-12, top_db=None)
    freqs = librosa.mel_frequencies(n_mels=LOGMEL_BANDS, fmin=0.0, fmax=LOGMEL_RATE / 2)
    return Spectrogram(np.maximum(values, FLOOR_DB), times, freqs, "embeddings")


def _pool(power: np.ndarray, times: np.ndarray,
          max_columns: int) -> tuple[np.ndarray, np.ndarray]:
    columns = power.shape[1]
    if columns <= max_columns:
        return power, times
    factor = -(-columns // max_columns)
    usable = columns - columns % factor
    pooled = power[:, :usable].reshape(power.shape[0], -1, factor).mean(axis=2)
    pooled_times = times[:usable].reshape(-1, factor).mean(axis=1)
    if usable < columns:  # the remainder becomes one last, narrower column
        pooled = np.hstack([pooled, power[:, usable:].mean(axis=1, keepdims=True)])
        pooled_times = np.append(pooled_times, times[usable:].mean())
    return pooled, pooled_times


def png(spectrogram: Spectrogram, dynamic_range_db: float = 80.0) -> bytes:
    """The spectrogram as an image: low frequencies at the bottom, magma colours scaled
    from the loudest value down `dynamic_range_db`."""
    from matplotlib import colormaps  # imported on first use: ~0.3 s
    from PIL import Image

    values = spectrogram.values_db
    top = float(values.max()) if values.size else 0.0
    scaled = np.clip((values - (top - dynamic_range_db)) / dynamic_range_db, 0.0, 1.0)
    rgba = colormaps["magma"](scaled[::-1], bytes=True)
    buffer = io.BytesIO()
    Image.fromarray(rgba[:, :, :3], mode="RGB").save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()
