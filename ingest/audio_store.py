"""The audio store: compressed chunks of what sensors heard, beside their windows.

Live chunks sit in the `audio_chunks` hypertable (partitioned by arrival time, dropped by
retention); chunks pinned as training material or alert evidence are copied to
`audio_pinned` before that (service.queries.audio). Reads look at both. Functions never
commit: the caller's transaction decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

import numpy as np
import psycopg

from ingest import audio_chunks
from ingest.audio_chunks import EncodedChunk

# Serialises audio writes of one sensor (per transaction), so that "skip the chunks already
# held" cannot race with a concurrent retry of the same upload.
LOCK_SENSOR_AUDIO = "SELECT pg_advisory_xact_lock(hashtextextended('earshot.audio:' || %s, 0))"
HELD_STARTS = """
SELECT t_start FROM audio_chunks WHERE sensor_id = %(sensor)s AND t_start = ANY(%(starts)s)
UNION
SELECT t_start FROM audio_pinned WHERE sensor_id = %(sensor)s AND t_start = ANY(%(starts)s)
"""
INSERT_CHUNK = """
INSERT INTO audio_chunks (sensor_id, t_start, t_end, sample_rate, channels, frames, codec, data)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""
# Live and pinned copies of one chunk are identical: DISTINCT ON keeps one of them.
_OVERLAPPING = """
SELECT DISTINCT ON (t_start) t_start, t_end, {columns} FROM (
    SELECT t_start, t_end, {columns} FROM audio_chunks
    WHERE sensor_id = %(sensor)s AND t_start < %(end)s AND t_end > %(start)s
      AND t_start > %(start)s - make_interval(secs => %(longest)s)
    UNION ALL
    SELECT t_start, t_end, {columns} FROM audio_pinned
    WHERE sensor_id = %(sensor)s AND t_start < %(end)s AND t_end > %(start)s
      AND t_start > %(start)s - make_interval(secs => %(longest)s)
) held ORDER BY t_start
"""
SELECT_CHUNKS = _OVERLAPPING.format(columns="sample_rate, channels, data")
SELECT_SPANS = _OVERLAPPING.format(columns="sample_rate")
_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class StoredAudio:
    chunks: int
    duplicate_chunks: int
    seconds: float
    bytes: int


@dataclass(frozen=True, eq=False)
class HeldAudio:
    """Audio of [start, end): float32 (frames, channels), silence where nothing is held."""

    samples: np.ndarray
    sample_rate: int
    gaps: list[tuple[datetime, datetime]] = field(default_factory=list)
    held_seconds: float = 0.0


def chunk_start(start: datetime, chunk: EncodedChunk, source_rate: int) -> datetime:
    return start + round(chunk.offset_frames * 1e6 / source_rate) * _US


def insert_audio(conn: psycopg.Connection, sensor_id: UUID, start: datetime,
                 chunks: list[EncodedChunk], source_rate: int) -> StoredAudio:
    """Store the chunks of one recording that starts at `start`; chunks already held
    (same sensor and start time: a retried upload) are skipped and counted."""
    conn.execute(LOCK_SENSOR_AUDIO, (str(sensor_id),))
    starts = [chunk_start(start, c, source_rate) for c in chunks]
    held = {row[0] for row in conn.execute(HELD_STARTS, {"sensor": sensor_id,
                                                         "starts": starts})}
    rows = []
    for t_start, chunk in zip(starts, chunks, strict=True):
        if t_start in held:
            continue
        t_end = t_start + round(chunk.frames * 1e6 / source_rate) * _US
        rows.append((sensor_id, t_start, t_end, chunk.sample_rate, chunk.channels,
                     chunk.frames, chunk.codec, chunk.data))
    if rows:
        with conn.cursor() as cur:
            cur.executemany(INSERT_CHUNK, rows)
    seconds = sum(r[5] / source_rate for r in rows)
    return StoredAudio(chunks=len(rows), duplicate_chunks=len(chunks) - len(rows),
                       seconds=seconds, bytes=sum(len(r[7]) for r in rows))


def _params(sensor_id: UUID, start: datetime, end: datetime) -> dict[str, object]:
    # Chunks are at most CHUNK_SECONDS long: bounds the index scan on t_start.
    return {"sensor": sensor_id, "start": start, "end": end,
            "longest": audio_chunks.CHUNK_SECONDS + 1.0}


def held_ranges(conn: psycopg.Connection, sensor_id: UUID, start: datetime,
                end: datetime, *, clip: bool = True) -> list[tuple[datetime, datetime]]:
    """The merged time ranges within [start, end) for which audio is held; with
    `clip=False`, whole (the first range may start before `start`, the last end after
    `end`): contiguous audio keeps the time grid of the recording it came from."""
    rows = conn.execute(SELECT_SPANS, _params(sensor_id, start, end)).fetchall()
    merged: list[tuple[datetime, datetime]] = []
    for t_start, t_end, _ in rows:
        lo, hi = (max(t_start, start), min(t_end, end)) if clip else (t_start, t_end)
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def read_audio(conn: psycopg.Connection, sensor_id: UUID, start: datetime,
               end: datetime) -> HeldAudio:
    """The held audio of [start, end), at the highest rate among its chunks (chunks of
    another rate are resampled; of another channel count, all are downmixed to mono)."""
    # Binary results: bytea as text is hex, twice the bytes to send and parse (a 10-minute
    # FLAC read spent 6x longer in the SELECT; bench/audio.py).
    with conn.cursor(binary=True) as cur:
        rows = cur.execute(SELECT_CHUNKS, _params(sensor_id, start, end)).fetchall()
    if not rows:
        return HeldAudio(np.zeros((0, 1), np.float32), 16000, [(start, end)], 0.0)
    rate = max(r[2] for r in rows)
    channels = rows[0][3] if len({r[3] for r in rows}) == 1 else 1
    total = round((end - start) / _US * rate / 1e6)
    out = np.zeros((total, channels), np.float32)
    covered: list[tuple[int, int]] = []  # merged [lo, hi) frames of `out`, in order
    for t_start, _, chunk_rate, _, data in rows:
        samples, decoded_rate = audio_chunks.decode(data)
        samples = audio_chunks.to_layout(samples, decoded_rate or chunk_rate, rate, channels)
        _place(out, covered, samples, round((t_start - start) / _US * rate / 1e6))
    held = sum(hi - lo for lo, hi in covered)
    return HeldAudio(out, rate, _gaps(covered, total, start, rate), held / rate)


def _place(out: np.ndarray, covered: list[tuple[int, int]], samples: np.ndarray,
           offset: int) -> None:
    """Copy `samples` into `out` at `offset` and note the frames now covered. Chunks come
    in t_start order, so a new span only ever extends or follows the last one."""
    lo, hi = max(offset, 0), min(offset + samples.shape[0], out.shape[0])
    if lo >= hi:
        return
    out[lo:hi] = samples[lo - offset:hi - offset]
    if covered and lo <= covered[-1][1]:
        covered[-1] = (covered[-1][0], max(covered[-1][1], hi))
    else:
        covered.append((lo, hi))


def _gaps(covered: list[tuple[int, int]], total: int, start: datetime,
          rate: int) -> list[tuple[datetime, datetime]]:
    """The frames of [0, total) outside `covered`, as times. Spans, not a per-frame mask:
    a per-frame mask of a 10-minute 16 kHz read took longer to scan than its FLAC to decode."""
    edges, at = [], 0
    for lo, hi in covered:
        if lo > at:
            edges.append((at, lo))
        at = max(at, hi)
    if at < total:
        edges.append((at, total))
    return [(start + round(a * 1e6 / rate) * _US, start + round(b * 1e6 / rate) * _US)
            for a, b in edges]
