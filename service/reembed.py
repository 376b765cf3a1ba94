"""Re-embedding (a worker loop): a sensor's windows over a time range recomputed from its
stored audio, e.g. with a better built-in embedding kind.

Held audio is processed span by span (contiguous audio), keeping each span's own time grid
(window k at span start + k * hop, as the upload placed them), in pieces of `PIECE_WINDOWS`
windows. Each piece is one transaction: the old windows of its time range are deleted,
the new ones stored and queued for scoring, and the job's `done_until` advanced — so a
worker killed mid-job loses nothing and the next claim resumes after the last piece.
Windows of the range that have no audio are left as they are.
"""

from __future__ import annotations

import logging
import math
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
from psycopg_pool import ConnectionPool

from ingest.audio_store import held_ranges, read_audio
from ingest.features import EmbeddingSpec, spec_of
from ingest.store import insert_windows
from service.fleet import kinds
from service.queries import reembed
from service.queries.reembed import ClaimedReembed
from service.settings import Settings

log = logging.getLogger("earshot.reembed")
PIECE_WINDOWS = 600
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


class JobLost(Exception):
    """The job was claimed by another worker (this one's heartbeat went stale)."""


def run(settings: Settings, pool: ConnectionPool, stop: threading.Event) -> None:
    """Claim and process jobs until `stop`; poll when the queue is empty."""
    while not stop.is_set():
        with pool.connection() as conn, conn.transaction():
            reembed.fail_exhausted(conn, settings.train_max_attempts, settings.train_stale_s)
            job = reembed.claim(conn, settings.train_stale_s)
        if job is None:
            stop.wait(settings.scheduler_poll_s * 2)
            continue
        process(pool, job, stop)


def process(pool: ConnectionPool, job: ClaimedReembed, stop: threading.Event) -> None:
    spec = spec_of(job.kind)
    try:
        if spec is None:
            raise ValueError(f"embedding kind {job.kind!r} cannot be computed from audio")
        with pool.connection() as conn:
            spans = held_ranges(conn, job.sensor_id, job.resume_at, job.end, clip=False)
        for span in spans:
            if stop.is_set():
                return  # the claim goes stale and another worker resumes it
            _span(pool, job, spec, span)
        error = None
    except JobLost:
        log.warning("re-embedding job %s was taken over by another worker", job.id)
        return
    except Exception as exc:  # a job must end, and say why
        log.exception("re-embedding job %s failed", job.id)
        error = f"{type(exc).__name__}: {exc}"
    with pool.connection() as conn, conn.transaction():
        reembed.finish(conn, job, error)


def _span(pool: ConnectionPool, job: ClaimedReembed, spec: EmbeddingSpec,
          span: tuple[datetime, datetime]) -> None:
    """Windows of one contiguous span that start at or after the resume point and end
    within both the span and the job's range, piece by piece."""
    hop = timedelta(seconds=spec.hop_s)
    window = timedelta(seconds=spec.window_s)
    first = span[0] + max(0, math.ceil((job.resume_at - span[0]) / hop)) * hop
    # Windows start before the job's end and end within the span.
    within_span = math.floor((span[1] - window - first) / hop) + 1
    before_end = math.ceil((job.end - first) / hop)
    remaining = min(within_span, before_end)
    while remaining > 0:
        count = min(PIECE_WINDOWS, remaining)
        _piece(pool, job, spec, first, count)
        first += count * hop
        remaining -= count


def _piece(pool: ConnectionPool, job: ClaimedReembed, spec: EmbeddingSpec, first: datetime,
           count: int) -> None:
    hop_us = round(spec.hop_s * 1e6)
    audio_end = first + timedelta(seconds=(count - 1) * spec.hop_s + spec.window_s)
    with pool.connection() as conn, conn.transaction():
        held = read_audio(conn, job.sensor_id, first, audio_end)
        values = kinds.embed(conn, held.samples, held.sample_rate, spec.kind)[:count]
        first_us = (first - _EPOCH) // _US
        times = first_us + hop_us * np.arange(len(values), dtype=np.int64)
        last = first + (len(values) - 1) * timedelta(microseconds=hop_us)
        reembed.delete_windows(conn, job.sensor_id, first, last)
        insert_windows(conn, job.sensor_id, times, values)
        if not reembed.advance(conn, job, first + len(values) * timedelta(microseconds=hop_us),
                               len(values)):
            raise JobLost(str(job.id))
