"""Window audio for classifiers that listen to the sound itself (`cnn`): each window's
stored audio, as the fixed-length mono 16 kHz clip `detectors.audio_nets` takes, read from
the audio store (`ingest.audio_store`) in spans, so a stretch of neighbouring windows costs
one read. A window is *held* only when the store has all of its audio (no gap inside).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np
import psycopg

from ingest import audio_store
from ingest.features import to_mono_16k

SR = 16_000
# Longest stretch read at once: bounds memory (10 min at 48 kHz stereo float32 ~ 220 MB
# before downmixing) while neighbouring windows still share a read.
MAX_SPAN = timedelta(seconds=600)


@dataclass(frozen=True)
class WindowClips:
    clips: np.ndarray  # float32 (n, samples): zeros where not held
    held: np.ndarray  # bool (n,)


def clip_samples(window_s: float) -> int:
    return round(window_s * SR)


def _spans(times: Sequence[datetime], length: timedelta) -> list[list[int]]:
    """Indices of `times` (sorted by time) grouped into reads of at most MAX_SPAN."""
    order = sorted(range(len(times)), key=lambda i: times[i])
    spans: list[list[int]] = []
    for i in order:
        if spans and times[i] + length - times[spans[-1][0]] <= MAX_SPAN:
            spans[-1].append(i)
        else:
            spans.append([i])
    return spans


def _covered(gaps: list[tuple[datetime, datetime]], lo: datetime, hi: datetime) -> bool:
    return not any(g_lo < hi and g_hi > lo for g_lo, g_hi in gaps)


def sensor_clips(conn: psycopg.Connection, sensor_id: UUID, times: Sequence[datetime],
                 window_s: float) -> WindowClips:
    """The audio of windows [t, t + window_s) of one sensor."""
    n_samples, length = clip_samples(window_s), timedelta(seconds=window_s)
    clips = np.zeros((len(times), n_samples), np.float32)
    held = np.zeros(len(times), bool)
    for span in _spans(times, length):
        lo, hi = times[span[0]], times[span[-1]] + length
        found = audio_store.read_audio(conn, sensor_id, lo, hi)
        if found.held_seconds <= 0:
            continue
        audio = to_mono_16k(found.samples, found.sample_rate).astype(np.float32)
        for i in span:
            if not _covered(found.gaps, times[i], times[i] + length):
                continue
            offset = round((times[i] - lo).total_seconds() * SR)
            piece = audio[offset:offset + n_samples]
            if piece.shape[0] == n_samples:
                clips[i], held[i] = piece, True
    return WindowClips(clips, held)


def window_clips(conn: psycopg.Connection, sensor_ids: Sequence[UUID],
                 times: Sequence[datetime], window_s: dict[UUID, float],
                 n_samples: int) -> WindowClips:
    """Clips of windows of several sensors (each window: its sensor and start); every
    clip has `n_samples` (the model's input length): a sensor with other windows is not
    held."""
    clips = np.zeros((len(times), n_samples), np.float32)
    held = np.zeros(len(times), bool)
    by_sensor: dict[UUID, list[int]] = {}
    for i, sensor in enumerate(sensor_ids):
        by_sensor.setdefault(sensor, []).append(i)
    for sensor, rows in by_sensor.items():
        length = window_s.get(sensor, 1.0)
        if clip_samples(length) != n_samples:
            continue
        found = sensor_clips(conn, sensor, [times[i] for i in rows], length)
        clips[rows], held[rows] = found.clips, found.held
    return WindowClips(clips, held)


def describe_missing(label_rows: list[dict[str, Any]], limit: int = 5) -> str:
    """Label ranges for an error message: 'dog_bark [start, end)', at most `limit`."""
    shown = [f"{r['label']!r} [{r['start_at'].isoformat()}, {r['end_at'].isoformat()})"
             for r in label_rows[:limit]]
    more = len(label_rows) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
