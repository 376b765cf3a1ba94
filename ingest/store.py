"""Bulk writes of embedding windows to TimescaleDB, and the reads the service needs back.

Batches go in with one statement per round: the windows travel as three arrays and one
blob of float32 vectors (no per-row Python), `INSERT … ON CONFLICT DO NOTHING` stores the
new ones, and the same statement counts them per sensor, queues them for scoring, touches
`last_seen_at` and sends one notification. A retried batch stores nothing twice; the rows
skipped are reported as duplicates. Several batches (a group commit) share the statement
when their sensors differ; a batch is stored whole or, if its transaction fails, not at
all. Functions never commit; the caller's transaction decides, and the caller answers only
after its commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from ingest.conditions import condition_attributes

INGEST_CHANNEL = "earshot_ingest"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The sensors of a group, locked in id order (so concurrent groups of several sensors
# cannot deadlock), against deletion and for the touch below; a deleted one is not returned
# (and INSERT_BATCHES writes none of its rows).
LOCK_SENSORS = """
SELECT id FROM sensors WHERE id = ANY(%(ids)s) ORDER BY id FOR NO KEY UPDATE
"""
# One batch per sensor (so counts per sensor are counts per batch). Row k of a batch:
# times[first + k], vector = blob[voff + k * width, +width). interval * float8 is exact
# for integer microseconds below 2^53 (the year 2255).
INSERT_BATCHES = """
WITH input AS MATERIALIZED (
    SELECT b.sensor_id,
           timestamptz 'epoch' + (%(times)s::int8[])[b.first + k + 1] * interval '1 microsecond'
               AS t,
           substring(%(blob)s::bytea FROM b.voff + k * b.width + 1 FOR b.width) AS v
    FROM unnest(%(sensors)s::uuid[], %(firsts)s::int4[], %(counts)s::int4[],
                %(voffs)s::int4[], %(widths)s::int4[]) AS b(sensor_id, first, n, voff, width),
         generate_series(0, b.n - 1) AS k
    WHERE b.sensor_id IN (SELECT id FROM sensors)  -- a deleted sensor's rows: none
), stored AS (
    INSERT INTO embeddings (sensor_id, t, v) SELECT sensor_id, t, v FROM input
    ON CONFLICT (sensor_id, t) DO NOTHING
    RETURNING sensor_id
), counts AS (
    SELECT sensor_id, count(*)::int AS n FROM stored GROUP BY sensor_id
), queued AS (
    INSERT INTO ingest_batches (sensor_id, t_min, t_max, n)
    SELECT c.sensor_id, min(i.t), max(i.t), c.n FROM counts c JOIN input i USING (sensor_id)
    GROUP BY c.sensor_id, c.n
), touched AS (
    UPDATE sensors SET last_seen_at = now() WHERE id IN (SELECT sensor_id FROM counts)
), notified AS (  -- one notification per statement, only when something was stored
    SELECT count(*) FROM (SELECT pg_notify(%(channel)s, sensor_id::text) FROM counts LIMIT 1) x
)
SELECT c.sensor_id, c.n FROM counts c CROSS JOIN notified
"""
# A batch sent with an operating condition declares it for the machine over the batch's
# window starts. A batch that starts within CONDITION_MERGE_GAP_S after the end of the
# machine's latest sensor-declared range extends that range when it has the same name, so a
# stream in one condition stays one row; a range of that name already covering the batch
# (a retry) is left alone; otherwise a new range starts (newer ranges win where they
# overlap, see service.training.conditions).
CONDITION_MERGE_GAP_S = 60.0
CONDITION_SOURCE = "sensor"
DECLARE_CONDITION = """
WITH machine AS (
    SELECT machine_id FROM sensors WHERE id = %(sensor)s
), latest AS (
    SELECT c.id, c.name, c.start_at, c.end_at
    FROM machine_conditions c JOIN machine m USING (machine_id)
    WHERE c.source = %(source)s ORDER BY c.start_at DESC, c.created_at DESC LIMIT 1
), extended AS (
    UPDATE machine_conditions c SET end_at = greatest(c.end_at, %(end)s)
    FROM latest l
    WHERE c.id = l.id AND l.name = %(name)s AND %(start)s >= l.start_at
      AND %(start)s <= l.end_at + %(gap)s * interval '1 second'
    RETURNING c.id
)
INSERT INTO machine_conditions (machine_id, start_at, end_at, name, attributes, source)
SELECT m.machine_id, %(start)s, %(end)s, %(name)s, %(attributes)s, %(source)s FROM machine m
WHERE NOT EXISTS (SELECT 1 FROM extended)
  AND NOT EXISTS (SELECT 1 FROM machine_conditions c
                  WHERE c.machine_id = m.machine_id AND c.name = %(name)s
                    AND c.start_at <= %(start)s AND c.end_at >= %(end)s)
"""
SELECT_WINDOWS = """
SELECT t, v FROM embeddings WHERE sensor_id = %s AND t >= %s AND t < %s ORDER BY t
"""
COUNT_WINDOWS = "SELECT count(*) FROM embeddings WHERE sensor_id = %s"


@dataclass(frozen=True)
class InsertResult:
    accepted: int
    duplicates: int


@dataclass(frozen=True)
class ConditionSpan:
    """An operating condition over window starts [start_us, end_us)."""

    name: str
    start_us: int
    end_us: int

    @classmethod
    def of(cls, name: str, times_us: np.ndarray) -> ConditionSpan:
        """The span of a batch's windows: first start to just after the last start."""
        return cls(name, int(times_us.min()), int(times_us.max()) + 1)


@dataclass(frozen=True, eq=False)
class SensorBatch:
    """Validated windows of one sensor: ``times_us`` int64 (n,), ``values`` float32 (n, dim),
    and the operating conditions the sender declared for them (usually none)."""

    sensor_id: UUID
    times_us: np.ndarray
    values: np.ndarray
    conditions: tuple[ConditionSpan, ...] = ()


class UnknownSensorError(LookupError):
    """The sensor does not exist (deleted meanwhile): nothing of its batch was stored."""

    def __init__(self, sensor_id: UUID) -> None:
        super().__init__(f"sensor {sensor_id} does not exist")
        self.sensor_id = sensor_id


def insert_windows(conn: psycopg.Connection, sensor_id: UUID, times_us: np.ndarray,
                   values: np.ndarray, conditions: tuple[ConditionSpan, ...] = ()
                   ) -> InsertResult:
    """Store one validated batch (and the conditions declared with it); queue it for
    scoring when anything was new. Raises UnknownSensorError (storing nothing) when the
    sensor does not exist."""
    if len(times_us) == 0:
        return InsertResult(0, 0)
    result = insert_batches(conn, [SensorBatch(sensor_id, times_us, values, conditions)])[0]
    if result is None:
        raise UnknownSensorError(sensor_id)
    return result


def insert_batches(conn: psycopg.Connection,
                   batches: Sequence[SensorBatch]) -> list[InsertResult | None]:
    """Store several validated batches in the caller's transaction: one result per batch,
    None for a batch whose sensor does not exist. Batches of one sensor are stored in
    order, so a window repeated in a later batch counts as that batch's duplicate."""
    # Every statement is sent before any result is read: in pipeline mode (the group
    # commit) the lock, the inserts and the caller's BEGIN share one round trip.
    ids = sorted({b.sensor_id for b in batches})
    locked = conn.execute(LOCK_SENSORS, {"ids": ids}, prepare=True)
    rounds = _rounds([i for i, b in enumerate(batches) if len(b.times_us)], batches)
    inserted = [conn.execute(INSERT_BATCHES, round_params([batches[i] for i in r]),
                             prepare=True) for r in rounds]
    for batch in batches:
        if batch.conditions:  # rare: most batches declare none and cost nothing here
            for span in merge_spans(batch.conditions):
                _declare(conn, batch.sensor_id, span)
    live = {row[0] for row in locked.fetchall()}
    results: list[InsertResult | None] = [
        InsertResult(0, 0) if b.sensor_id in live else None for b in batches]
    for round_, cursor in zip(rounds, inserted, strict=True):
        accepted = {row[0]: int(row[1]) for row in cursor.fetchall()}
        for i in round_:
            if results[i] is not None:
                n_new = accepted.get(batches[i].sensor_id, 0)
                results[i] = InsertResult(n_new, len(batches[i].times_us) - n_new)
    return results


def merge_spans(spans: Sequence[ConditionSpan]) -> list[ConditionSpan]:
    """Spans in time order, consecutive ones of one name within the merge gap joined (an
    MQTT group holds many messages of a sensor)."""
    gap_us = round(CONDITION_MERGE_GAP_S * 1e6)
    merged: list[ConditionSpan] = []
    for span in sorted(spans, key=lambda s: s.start_us):
        last = merged[-1] if merged else None
        if last is not None and last.name == span.name and span.start_us <= last.end_us + gap_us:
            merged[-1] = ConditionSpan(last.name, last.start_us, max(last.end_us, span.end_us))
        else:
            merged.append(span)
    return merged


def _declare(conn: psycopg.Connection, sensor_id: UUID, span: ConditionSpan) -> None:
    conn.execute(DECLARE_CONDITION, {
        "sensor": sensor_id, "name": span.name, "source": CONDITION_SOURCE,
        "attributes": Jsonb(condition_attributes(span.name)),
        "start": _EPOCH + timedelta(microseconds=span.start_us),
        "end": _EPOCH + timedelta(microseconds=span.end_us),
        "gap": CONDITION_MERGE_GAP_S}, prepare=True)


def _rounds(indices: list[int], batches: Sequence[SensorBatch]) -> list[list[int]]:
    """Split batch indices so that no round holds two batches of one sensor."""
    rounds: list[list[int]] = []
    seen: dict[UUID, int] = {}
    for i in indices:
        r = seen.get(batches[i].sensor_id, -1) + 1
        seen[batches[i].sensor_id] = r
        if r == len(rounds):
            rounds.append([])
        rounds[r].append(i)
    return rounds


def round_params(batches: list[SensorBatch]) -> dict[str, Any]:
    """INSERT_BATCHES parameters for batches of distinct sensors."""
    counts = [len(b.times_us) for b in batches]
    widths = [b.values.shape[1] * 4 for b in batches]
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]]).tolist()
    voffs = np.concatenate([[0], np.cumsum(np.multiply(counts, widths))[:-1]]).tolist()
    params = {
        "sensors": [b.sensor_id for b in batches], "firsts": firsts, "counts": counts,
        "voffs": voffs, "widths": widths, "channel": INGEST_CHANNEL,
        "times": np.concatenate([b.times_us for b in batches]).astype(np.int64).tolist(),
        "blob": b"".join(np.ascontiguousarray(b.values, dtype="<f4").tobytes()
                         for b in batches),
    }
    return params


def read_windows(conn: psycopg.Connection, sensor_id: UUID, start: datetime, end: datetime,
                 dim: int) -> tuple[list[datetime], np.ndarray]:
    rows = conn.execute(SELECT_WINDOWS, (sensor_id, start, end)).fetchall()
    times = [row[0] for row in rows]
    values = decode_vectors([row[1] for row in rows], dim)
    return times, values


def decode_vectors(blobs: list[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.empty((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim)


def count_windows(conn: psycopg.Connection, sensor_id: UUID) -> int:
    row = conn.execute(COUNT_WINDOWS, (sensor_id,)).fetchone()
    return int(row[0]) if row else 0


# Dead letters and sensor lookups for ingest paths that cannot answer the sender with a
# problem response (the MQTT bridge): the reason is kept where an operator can list it.
SELECT_SENSOR_DIM = "SELECT dim FROM sensors WHERE id = %s"
INSERT_INGEST_ERROR = """
INSERT INTO ingest_errors (sensor_id, topic, source, reason, payload_excerpt)
VALUES (%s, %s, %s, %s, %s)
"""


def sensor_dim(conn: psycopg.Connection, sensor_id: UUID) -> int | None:
    """The sensor's embedding dimension, or None when no such sensor exists."""
    row = conn.execute(SELECT_SENSOR_DIM, (sensor_id,)).fetchone()
    return int(row[0]) if row else None


def record_ingest_error(conn: psycopg.Connection, sensor_id: UUID | None, topic: str | None,
                        source: str, reason: str, excerpt: str | None) -> None:
    """One dead-letter row. PostgreSQL text cannot hold NUL, and a payload is arbitrary
    bytes, so NULs are replaced rather than letting the row (and the ack) fail."""
    conn.execute(INSERT_INGEST_ERROR, (sensor_id, _text(topic), source, _text(reason),
                                       _text(excerpt)))


def _text(value: str | None) -> str | None:
    return None if value is None else value.replace("\x00", "\ufffd")
