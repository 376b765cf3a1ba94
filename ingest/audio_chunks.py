"""Audio kept as compressed chunks: splitting a recording, encoding and decoding a chunk.

Chunks are at most `CHUNK_SECONDS` long and keep the sample rate and channels the sensor
sent (so any later embedding, at any rate, can be computed from them), except Opus, which
only encodes 8/12/16/24/48 kHz: other rates are resampled to 48 kHz for it (the stored
row says so). FLAC keeps 16-bit PCM sources at 16 bits and everything else (float,
24-bit, decoded lossy audio) at 24 bits.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import librosa
import numpy as np
import soundfile as sf

CHUNK_SECONDS = 30.0
CODECS = ("flac", "vorbis", "opus")
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_FORMATS = {"flac": ("FLAC", None), "vorbis": ("OGG", "VORBIS"), "opus": ("OGG", "OPUS")}
# Decoded lossy audio (Vorbis, Opus) is float: quantising it to 16 bits would add noise at
# -98 dBFS, which moves the log-mel values of near-silent bands (measured 0.12 dB on an
# ESC-10 clip) — 24 bits keep it below logmel-v1's -100 dB floor.
_SIXTEEN_BIT_OR_LESS = {"PCM_16", "PCM_S8", "PCM_U8", "ULAW", "ALAW", "IMA_ADPCM", "MS_ADPCM",
                        "GSM610", "DWVW_12", "DWVW_16"}


@dataclass(frozen=True, eq=False)
class EncodedChunk:
    """One stored chunk: `offset_frames` counts source frames from the recording's start."""

    offset_frames: int
    frames: int
    sample_rate: int
    channels: int
    codec: str
    data: bytes


def flac_subtype(source_subtype: str | None) -> str:
    """16-bit (or coarser) sources stay 16-bit, lossless; anything finer is kept at 24."""
    return "PCM_16" if source_subtype in _SIXTEEN_BIT_OR_LESS else "PCM_24"


def encode(samples: np.ndarray, sample_rate: int, codec: str,
           source_subtype: str | None = None) -> tuple[bytes, int]:
    """`samples` float32 (frames, channels) -> (encoded bytes, the rate stored)."""
    container, subtype = _FORMATS[codec]
    rate = sample_rate
    if codec == "flac":
        subtype = flac_subtype(source_subtype)
    elif codec == "opus" and sample_rate not in OPUS_RATES:
        samples = librosa.resample(samples.T, orig_sr=sample_rate, target_sr=48000,
                                   res_type="soxr_hq").T.astype(np.float32)
        rate = 48000
    buffer = io.BytesIO()
    # Lossy encoders overshoot slightly on full-scale input; clipping beats wrapping.
    sf.write(buffer, np.clip(samples, -1.0, 1.0), rate, format=container, subtype=subtype)
    return buffer.getvalue(), rate


def split(samples: np.ndarray, sample_rate: int, codec: str,
          source_subtype: str | None = None) -> list[EncodedChunk]:
    """Encode a recording as consecutive chunks of at most CHUNK_SECONDS."""
    step = round(CHUNK_SECONDS * sample_rate)
    chunks = []
    for offset in range(0, samples.shape[0], step):
        part = samples[offset:offset + step]
        data, rate = encode(part, sample_rate, codec, source_subtype)
        chunks.append(EncodedChunk(offset_frames=offset, frames=part.shape[0],
                                   sample_rate=rate, channels=part.shape[1], codec=codec,
                                   data=data))
    return chunks


def decode(data: bytes) -> tuple[np.ndarray, int]:
    """A stored chunk -> float32 (frames, channels) and its rate."""
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples, int(rate)


def to_layout(samples: np.ndarray, rate: int, target_rate: int,
              target_channels: int) -> np.ndarray:
    """Resample and (when channel counts differ) downmix to mono, to join chunks of
    different rates or layouts in one answer."""
    if samples.shape[1] != target_channels:
        samples = samples.mean(axis=1, keepdims=True)
    if rate != target_rate:
        samples = librosa.resample(samples.T, orig_sr=rate, target_sr=target_rate,
                                   res_type="soxr_hq").T
    return samples.astype(np.float32, copy=False)


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV: every browser and audio tool plays it."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()
