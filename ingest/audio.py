"""Decode uploaded audio (WAV, FLAC, Ogg Vorbis) and turn it into built-in embeddings.

Limits are checked from the container header before any sample is decoded, so an hour of
audio costs a header read, not an hour of decoding, before it is refused.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
import soundfile as sf

from ingest.errors import AudioError, UnsupportedMediaTypeError
from ingest.features import EMBEDDINGS, embed, is_builtin

# libsndfile reads many more containers; accepting only these keeps the documented surface
# (and the decoder code paths reachable from the network) small.
SUPPORTED_FORMATS: dict[str, str] = {
    "WAV": "WAV",
    "WAVEX": "WAV (extensible)",
    "RF64": "RF64",
    "FLAC": "FLAC",
    "OGG": "Ogg Vorbis",
}
MIN_SAMPLE_RATE = 8000
# Window length of every built-in embedding: shorter audio would yield no vector at all.
MIN_SECONDS = min(spec.window_s for spec in EMBEDDINGS.values())

# libsndfile repairs a WAV whose data chunk runs past the end of the file and only says so
# in its log, e.g. "data : 1792108 (should be 896032)": that is how truncation shows.
_SHORT_CHUNK = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Recorders that stream to a pipe cannot seek back, so they write a placeholder size.
_STREAMING_SIZES = {0, 0x7FFFFFFF, 0xFFFFFFFF}


@dataclass(frozen=True, eq=False)
class DecodedAudio:
    """PCM as float32 in [-1, 1], shape ``(frames, channels)``."""

    samples: np.ndarray
    sample_rate: int
    channels: int
    duration_s: float
    subtype: str | None = None  # libsndfile's name of the source encoding, e.g. PCM_16


def _open(data: bytes) -> sf.SoundFile:
    if not data:
        raise AudioError("the audio body is empty (0 bytes)")
    try:
        return sf.SoundFile(io.BytesIO(data))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(
            f"the body is not readable audio ({getattr(exc, 'error_string', exc)}); "
            f"supported containers: {', '.join(sorted(set(SUPPORTED_FORMATS.values())))}"
        ) from None


def _check_header(f: sf.SoundFile, *, max_seconds: float, max_channels: int, max_rate: int) -> None:
    if f.format not in SUPPORTED_FORMATS:
        raise UnsupportedMediaTypeError(
            f"audio container {f.format} is not supported; use one of: "
            f"{', '.join(sorted(set(SUPPORTED_FORMATS.values())))}"
        )
    if f.channels > max_channels:
        raise AudioError(f"audio has {f.channels} channels; at most {max_channels} are accepted")
    if not MIN_SAMPLE_RATE <= f.samplerate <= max_rate:
        raise AudioError(
            f"sample rate {f.samplerate} Hz is not supported; "
            f"accepted: {MIN_SAMPLE_RATE}..{max_rate} Hz"
        )
    if f.frames <= 0:
        raise AudioError("the audio contains no samples (0 frames)")
    duration = f.frames / f.samplerate
    if duration > max_seconds:
        raise AudioError(f"audio is {duration:.3f} s long; at most {max_seconds:g} s are accepted")
    if duration < MIN_SECONDS:
        raise AudioError(
            f"audio is {duration:.6f} s long ({f.frames} samples per channel at "
            f"{f.samplerate} Hz); "
            f"at least {MIN_SECONDS:g} s (one embedding window) is required"
        )


def _check_not_truncated(f: sf.SoundFile) -> None:
    match = _SHORT_CHUNK.search(f.extra_info)
    if match is None:
        return
    declared, present = int(match.group(1)), int(match.group(2))
    if present < declared and declared not in _STREAMING_SIZES:
        raise AudioError(
            f"the WAV file is truncated: its header declares {declared} bytes of audio data "
            f"but only {present} are present"
        )


def _read_samples(f: sf.SoundFile) -> np.ndarray:
    try:
        samples = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioError(f"the audio data is corrupt or truncated: {exc}") from None
    if samples.shape[0] < f.frames:
        raise AudioError(
            f"the audio is truncated or corrupt: the header declares {f.frames} frames "
            f"but only {samples.shape[0]} could be decoded"
        )
    finite = np.isfinite(samples).all(axis=1)
    if not finite.all():
        first = int(np.argmin(finite))
        raise AudioError(
            f"the audio contains NaN or infinite samples (first at frame {first})",
            window=first // f.samplerate,
        )
    return samples


def decode_audio(
    data: bytes, *, max_seconds: float, max_channels: int = 8, max_rate: int = 192000
) -> DecodedAudio:
    """Decode a whole audio file held in memory.

    Raises :class:`AudioError` for empty, corrupt, truncated, too short (under one embedding
    window), too long, too many channels or an unsupported sample rate, and
    :class:`UnsupportedMediaTypeError` for containers libsndfile reads but Earshot does not
    accept.
    """
    with _open(data) as f:
        # Truncation first: a cut file also looks short, and "truncated" is the useful answer.
        _check_not_truncated(f)
        _check_header(f, max_seconds=max_seconds, max_channels=max_channels, max_rate=max_rate)
        samples = _read_samples(f)
        rate, channels, subtype = f.samplerate, f.channels, f.subtype
    return DecodedAudio(
        samples=samples,
        sample_rate=rate,
        channels=channels,
        duration_s=samples.shape[0] / rate,
        subtype=subtype,
    )


def audio_to_embeddings(
    data: bytes, kind: str, max_seconds: float
) -> tuple[np.ndarray, DecodedAudio]:
    """Decode ``data`` and embed it with the built-in ``kind``.

    Returns float32 ``(n_windows, dim)`` with window ``k`` starting ``k * hop_s`` seconds
    after the first sample, and the decoded audio.
    """
    if not is_builtin(kind):
        raise AudioError(
            f"the server cannot compute embeddings of kind {kind!r} from audio; send "
            f"embeddings instead, or use a sensor with a built-in kind: {', '.join(EMBEDDINGS)}"
        )
    decoded = decode_audio(data, max_seconds=max_seconds)
    return embed(decoded.samples, decoded.sample_rate, kind), decoded
