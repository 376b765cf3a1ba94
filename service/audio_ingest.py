"""Storing one uploaded recording: its windows (for built-in embedding kinds), its audio
(under the sensor's audio policy) and its annotations, in one transaction.

Decoding, embedding and encoding happen before the transaction, so no pooled connection
is held during seconds of CPU work. Acknowledged means committed: the caller answers
after this returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool

from ingest import audio_chunks, codec
from ingest.audio import DecodedAudio, decode_audio
from ingest.audio_store import StoredAudio, insert_audio
from ingest.conditions import canonical_condition
from ingest.errors import BatchValidationError
from ingest.features import fleet_version, is_builtin, spec_of
from ingest.store import InsertResult, insert_windows, read_windows
from service.errors import NotFoundError, UnprocessableError
from service.fleet import kinds
from service.queries import baselines, conditions, labels
from service.queries import sensors as sensor_queries
from service.queries.sensors import AudioPolicy, IngestTarget
from service.settings import Settings

BASELINE_SOURCE = "audio-upload"
# Sent windows agree with the server's own when every value is this close (dB): a
# conforming logmel-v1 implementation agrees to 1e-5; 16/24-bit quantisation of the audio
# moves values by far less than this, different audio by several dB.
AGREEMENT_DB = 0.1
# fleet-v<N> vectors (values up to ~0.2): 16-bit audio moves them by < 7e-4, other audio by
# ~0.01-0.03 (measured on ESC-10); the dB tolerance above would let a wrong sensor through.
AGREEMENT_FLEET = 5e-3


def agreement_tolerance(kind: str) -> float:
    return AGREEMENT_FLEET if fleet_version(kind) is not None else AGREEMENT_DB
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass(frozen=True)
class AudioUpload:
    start: datetime
    label: str | None
    baseline: bool
    condition: str | None = None  # operating condition of the whole clip


@dataclass(frozen=True, eq=False)
class PreparedRecording:
    """Everything computed from the body before the transaction."""

    decoded: DecodedAudio
    times_us: np.ndarray
    values: np.ndarray
    chunks: list[audio_chunks.EncodedChunk]
    end: datetime


@dataclass(frozen=True)
class StoredRecording:
    windows: InsertResult
    window_count: int
    audio: StoredAudio
    policy: AudioPolicy
    end: datetime


def prepare(body: bytes, target: IngestTarget, policy: AudioPolicy, settings: Settings,
            start: datetime, pool: ConnectionPool) -> PreparedRecording:
    """Decode, embed (built-in and fleet kinds; `pool` loads a fleet version's weights once
    per process) and encode (policy `keep`); validate the times."""
    decoded = decode_audio(body, max_seconds=settings.max_audio_seconds)
    start_us = (start - _EPOCH) // _US
    if is_builtin(target.kind):
        values = kinds.embed(pool, decoded.samples, decoded.sample_rate, target.kind)
        spec = spec_of(target.kind)
        assert spec is not None  # built-in
        hop_us = round(spec.hop_s * 1e6)
        times = start_us + hop_us * np.arange(len(values), dtype=np.int64)
        # Through the batch codec: audio windows obey exactly the rules of sent windows.
        batch = codec.parse_batch(codec.encode_binary(times, values), codec.BINARY_TYPE,
                                  dim=target.dim, limits=settings.batch_limits(),
                                  now_us=codec.now_us())
        times_us, values = batch.times_us, batch.values
    else:
        _check_start(start_us, decoded.duration_s, settings)
        times_us, values = np.empty(0, np.int64), np.empty((0, target.dim), np.float32)
    chunks = (audio_chunks.split(decoded.samples, decoded.sample_rate, policy.codec,
                                 decoded.subtype) if policy.keep else [])
    return PreparedRecording(decoded, times_us, values, chunks,
                             _end(start, decoded, target, len(times_us)))


def _end(start: datetime, decoded: DecodedAudio, target: IngestTarget,
         windows: int) -> datetime:
    """End of the last window (what the windows cover, as annotations always did), or of
    the audio itself when it yields no windows."""
    spec = spec_of(target.kind)
    seconds = decoded.duration_s
    if spec is not None and windows:
        seconds = (windows - 1) * spec.hop_s + spec.window_s
    return start + round(seconds * 1e6) * _US


def _check_start(start_us: int, duration_s: float, settings: Settings) -> None:
    """The time rules of windows, for audio that yields none (custom embedding kinds)."""
    now = codec.now_us()
    if start_us < now - settings.max_past_days * 86400e6:
        raise BatchValidationError(f"start is more than {settings.max_past_days:g} days in the "
                                   "past")
    if start_us + duration_s * 1e6 > now + settings.max_future_s * 1e6:
        raise BatchValidationError(f"the audio ends more than {settings.max_future_s:g} s in "
                                   "the future")


def commit(pool: ConnectionPool, target: IngestTarget, policy: AudioPolicy,
           prepared: PreparedRecording, upload: AudioUpload) -> StoredRecording:
    """Windows, audio and annotations in one transaction, committed on return."""
    with pool.connection() as conn, conn.transaction():
        if sensor_queries.ingest_target(conn, target.id, lock=True) is None:
            raise NotFoundError(f"sensor {target.id} was deleted during the request")
        windows = insert_windows(conn, target.id, prepared.times_us, prepared.values)
        if windows.duplicates:
            _check_agreement(conn, target, prepared)
        audio = insert_audio(conn, target.id, upload.start, prepared.chunks,
                             prepared.decoded.sample_rate)
        if windows.accepted or audio.chunks:
            _annotate(conn, target, upload, prepared.end)
    return StoredRecording(windows, len(prepared.times_us), audio, policy, prepared.end)


def _check_agreement(conn: psycopg.Connection, target: IngestTarget,
                     prepared: PreparedRecording) -> None:
    """Windows the sensor already sent for this audio must be what the audio yields."""
    first = _EPOCH + int(prepared.times_us[0]) * _US
    last = _EPOCH + int(prepared.times_us[-1]) * _US
    times, stored = read_windows(conn, target.id, first, last + _US, target.dim)
    computed = dict(zip(prepared.times_us.tolist(), prepared.values, strict=True))
    tolerance = agreement_tolerance(target.kind)
    for moment, vector in zip(times, stored, strict=True):
        mine = computed.get((moment - _EPOCH) // _US)
        if mine is not None and not np.allclose(vector, mine, rtol=0.0, atol=tolerance):
            worst = float(np.abs(vector - mine).max())
            raise UnprocessableError(
                f"the {target.kind} window stored for {moment.isoformat()} differs from the one "
                f"computed from this audio by up to {worst:.3g} (more than {tolerance:g} "
                "allowed): the sensor's embedding or its audio is wrong; nothing was stored")


def _annotate(conn: psycopg.Connection, target: IngestTarget, upload: AudioUpload,
              end: datetime) -> None:
    if upload.baseline:
        baselines.insert_baseline(conn, target.machine_id, upload.start, end, None,
                                  BASELINE_SOURCE)
    if upload.label is not None:
        labels.insert_label(conn, target.machine_id, upload.start, end, upload.label)
    if upload.condition is not None:
        name, attributes = canonical_condition(upload.condition)
        conditions.insert_condition(conn, target.machine_id, upload.start, end,
                                    name, attributes, BASELINE_SOURCE)
