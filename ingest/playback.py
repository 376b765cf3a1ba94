"""Recordings played as a live sensor hears them: ``logmel-v1`` computed block by block.

A file is read in short blocks, downmixed, resampled with a streaming soxr resampler and
embedded each time a full window has arrived, so memory stays at a block and a window
whatever the file's length. The streaming resampler produces the same samples as the
one-shot ``librosa.resample(..., res_type="soxr_hq")`` of the ``logmel-v1`` spec (its
output may end one sample earlier, which can only matter for a file whose resampled length
falls within one sample of a whole window).

Files of a folder are placed back to back in time in name order: file ``i`` starts where
file ``i - 1`` ended (its exact duration), and window ``k`` of a file starts ``k`` hops
after the file's start, as the server's audio endpoint places them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ingest.features import EMBEDDINGS, LOGMEL_V1, RESAMPLE_TYPE, embed_windows

SPEC = EMBEDDINGS[LOGMEL_V1]
AUDIO_SUFFIXES = (".wav", ".wave", ".flac", ".ogg", ".oga")
BLOCK_S = 0.25


@dataclass(frozen=True)
class Recording:
    path: Path
    frames: int
    sample_rate: int
    channels: int

    @property
    def duration_us(self) -> int:
        return round(self.frames * 1_000_000 / self.sample_rate)


def find_recordings(path: Path) -> list[Recording]:
    """The file itself, or a folder's audio files (not recursive) sorted by name."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        if not files:
            raise ValueError(f"{path} holds no {'/'.join(AUDIO_SUFFIXES)} files")
    elif path.is_file():
        files = [path]
    else:
        raise ValueError(f"{path} does not exist")
    return [_describe(p) for p in files]


def _describe(path: Path) -> Recording:
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ValueError(f"{path} is not readable audio: {exc}") from None
    return Recording(path, info.frames, info.samplerate, info.channels)


def back_to_back(recordings: list[Recording], start_us: int) -> list[tuple[Recording, int]]:
    """Each recording with its start time, the next beginning where the previous ends."""
    placed, t = [], start_us
    for rec in recordings:
        placed.append((rec, t))
        t += rec.duration_us
    return placed


def total_duration_us(recordings: list[Recording]) -> int:
    return sum(rec.duration_us for rec in recordings)


def stream_windows(rec: Recording, start_us: int,
                   embed: Callable[[np.ndarray], np.ndarray] = embed_windows,
                   ) -> Iterator[tuple[int, np.ndarray]]:
    """``(window start µs, float32 vector)`` for each full window, as soon as it is heard;
    `embed` maps mono 16 kHz windows ``(n, 16000)`` to vectors (default logmel-v1)."""
    resampler = (None if rec.sample_rate == SPEC.sample_rate else
                 soxr.ResampleStream(rec.sample_rate, SPEC.sample_rate, 1, dtype="float64",
                                     quality=RESAMPLE_TYPE))
    pending = np.empty(0, dtype=np.float64)
    k = 0
    hop_us = round(SPEC.hop_s * 1_000_000)
    with sf.SoundFile(str(rec.path)) as f:
        block = max(1, round(BLOCK_S * rec.sample_rate))
        while True:
            samples = f.read(block, dtype="float32", always_2d=True)
            last = samples.shape[0] < block
            # float64 before the channel mean, as the spec's step 1 does on the whole file.
            mono = samples.astype(np.float64).mean(axis=1)
            if resampler is not None:
                mono = resampler.resample_chunk(mono, last=last)
            pending = np.concatenate([pending, mono])
            while pending.shape[0] >= SPEC.window_samples:
                window, pending = (pending[:SPEC.window_samples],
                                   pending[SPEC.hop_samples:])
                yield start_us + k * hop_us, embed(window[None, :])[0]
                k += 1
            if last:
                return
