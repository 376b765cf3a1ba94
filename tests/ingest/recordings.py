"""Real recordings from ``<repo>/../shared/data`` (see its manifest.csv) for the ingest tests."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"

# One clip per source and per sample rate / channel layout found in the data set.
BLDC_44K_STEREO = "bldc/bldc_motor__healthy_M1_1400rpm.wav"
BLDC_16K_STEREO = "bldc/bldc_motor__healthy_M1_1450rpm.wav"
MIMII_16K_MONO = "mimii/mimii_0dB_singles__fan_id_00_normal_00000000.wav"
ESC10_44K_OGG = "esc10/esc10__baby_cry__1-187207-A.ogg"


@dataclass(frozen=True)
class Clip:
    path: str
    sample_rate: int
    channels: int
    duration_s: float

    def read_bytes(self) -> bytes:
        return (DATA_DIR / self.path).read_bytes()


def manifest() -> list[Clip]:
    with (DATA_DIR / "manifest.csv").open(newline="") as f:
        return [
            Clip(
                row["path"], int(row["sample_rate"]), int(row["channels"]), float(row["duration_s"])
            )
            for row in csv.DictReader(f)
        ]


def clip_bytes(path: str) -> bytes:
    return (DATA_DIR / path).read_bytes()


def encode(samples: np.ndarray, sr: int, fmt: str = "WAV", subtype: str | None = None) -> bytes:
    """Write samples to an in-memory file the way a sensor would upload it."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, sr, format=fmt, subtype=subtype)
    return buffer.getvalue()


def assert_close(actual: np.ndarray, desired: np.ndarray | float) -> None:
    """The logmel-v1 conformance tolerance (see ingest/features.py)."""
    np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-5)
