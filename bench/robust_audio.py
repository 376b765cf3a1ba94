"""Audio variants for the robustness benchmark: loudness normalisation and ESC-10 background
noise mixed in at a fixed level or a fixed SNR, deterministic per recording.

Every variant first brings a recording to :data:`LOUDNESS_LUFS` integrated loudness
(ITU-R BS.1770-4, pyloudnorm), so a fault that is merely louder cannot give itself away.
Noise: each recording gets one ESC-10 class of :data:`NOISE_CLASSES` and clips of that class
played back to back (cycled) to its length, both drawn from a seed derived from the
recording's path, so a recording and every slice of it always carry the same noise, and
training and test recordings carry different noise (as on a plant floor).
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyloudnorm

from bench import common
from bench.common import DATA_DIR, SR, Clip

NOISE_CLASSES = ("rain", "sea_waves", "chainsaw", "helicopter", "fire_crackling")
LOUDNESS_LUFS = -26.0
# "Fixed absolute level": the noise's own loudness, whatever the recording's.
FIXED_NOISE_LUFS = -36.0
_SILENCE_LUFS = -70.0  # pyloudnorm's gate: quieter than this has no measurable loudness


@dataclass(frozen=True)
class Variant:
    """How a recording is altered: ``normalise`` to the common loudness, then noise at
    ``noise_lufs`` (fixed level) or at ``snr_db`` below/above the recording's RMS."""

    name: str
    normalise: bool = True
    noise_lufs: float | None = None
    snr_db: float | None = None


AS_RECORDED = Variant("as recorded", normalise=False)
NORMALISED = Variant(f"loudness-normalised ({LOUDNESS_LUFS:g} LUFS)")
VARIANTS = (
    AS_RECORDED,
    NORMALISED,
    Variant(f"noise at {FIXED_NOISE_LUFS:g} LUFS", noise_lufs=FIXED_NOISE_LUFS),
    Variant("noise at 0 dB SNR", snr_db=0.0),
    Variant("noise at -6 dB SNR", snr_db=-6.0),
)


@functools.lru_cache(maxsize=1)
def _meter() -> pyloudnorm.Meter:
    return pyloudnorm.Meter(SR)


def to_loudness(y: np.ndarray, lufs: float) -> np.ndarray:
    """``y`` scaled to integrated loudness ``lufs`` (unchanged if it has none: silence)."""
    measured = _meter().integrated_loudness(y)
    if not np.isfinite(measured) or measured < _SILENCE_LUFS:
        return y
    return np.asarray(y * 10 ** ((lufs - measured) / 20))


def _seed(path: str) -> int:
    return zlib.crc32(path.encode())


@functools.lru_cache(maxsize=1)
def _noise_paths(data_dir: Path) -> dict[str, list[str]]:
    rows = common.read_manifest(data_dir)
    return {c: sorted(r["path"] for r in rows if r["label"] == c) for c in NOISE_CLASSES}


def noise_for(path: str, n_samples: int, data_dir: Path = DATA_DIR) -> tuple[str, np.ndarray]:
    """(class, unit-RMS noise of ``n_samples``) for the recording at ``path``."""
    rng = np.random.default_rng(_seed(path))
    noise_class = NOISE_CLASSES[rng.integers(len(NOISE_CLASSES))]
    clips = _noise_paths(data_dir)[noise_class]
    parts, total = [], 0
    while total < n_samples:
        part = common.load_16k(clips[rng.integers(len(clips))], data_dir)
        parts.append(part)
        total += part.shape[0]
    noise = np.concatenate(parts)[:n_samples]
    return noise_class, noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)


@functools.lru_cache(maxsize=512)
def _variant_audio(path: str, variant: Variant, data_dir: Path) -> np.ndarray:
    y = common.load_16k(path, data_dir)
    if variant.normalise:
        y = to_loudness(y, LOUDNESS_LUFS)
    if variant.noise_lufs is not None:
        _, noise = noise_for(path, y.shape[0], data_dir)
        y = y + to_loudness(noise, variant.noise_lufs)
    elif variant.snr_db is not None:
        _, noise = noise_for(path, y.shape[0], data_dir)
        rms = float(np.sqrt(np.mean(y**2)))
        y = y + noise * rms / 10 ** (variant.snr_db / 20)
    y = np.asarray(y)
    y.setflags(write=False)
    return y


def load_variant(clip: Clip | str, variant: Variant, data_dir: Path = DATA_DIR) -> np.ndarray:
    """16 kHz mono samples of ``clip`` under ``variant`` (the whole file is altered first,
    then sliced, so both halves of a split recording share one noise)."""
    clip = Clip(clip) if isinstance(clip, str) else clip
    y = _variant_audio(clip.path, variant, data_dir)
    start = round(clip.start_s * SR)
    end = None if clip.end_s is None else round(clip.end_s * SR)
    return y[start:end]
