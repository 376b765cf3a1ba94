"""Bulk writes of embedding windows to TimescaleDB, and the reads the service needs back.

Windows go in through one binary COPY into a session temp table, then one
`INSERT … ON CONFLICT DO NOTHING` into the hypertable: a retried batch stores nothing
twice, and the rows skipped are reported as duplicates. Functions never commit; the
caller's transaction decides, and the caller answers only after its commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import numpy as np
import psycopg

from ingest.pgcopy import copy_payload

INGEST_CHANNEL = "earshot_ingest"
CREATE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS ingest_stage (sensor_id uuid, t timestamptz, v bytea)
ON COMMIT DELETE ROWS
"""
COPY_STAGE = "COPY ingest_stage (sensor_id, t, v) FROM STDIN WITH (FORMAT binary)"
MERGE_STAGE = """
INSERT INTO embeddings (sensor_id, t, v)
SELECT sensor_id, t, v FROM ingest_stage
ON CONFLICT (sensor_id, t) DO NOTHING
"""
# DELETE, not TRUNCATE: the stage is empty or tiny (ON COMMIT DELETE ROWS) and TRUNCATE
# swaps the table's files, measured 2.96 ms of a 5.8 ms request (BENCHMARKS.md, ingest).
CLEAR_STAGE = "DELETE FROM ingest_stage"
RECORD_BATCH = """
INSERT INTO ingest_batches (sensor_id, t_min, t_max, n) VALUES (%s, %s, %s, %s)
"""
TOUCH_SENSOR = "UPDATE sensors SET last_seen_at = now() WHERE id = %s"
NOTIFY_INGEST = "SELECT pg_notify(%s, %s)"
SELECT_WINDOWS = """
SELECT t, v FROM embeddings WHERE sensor_id = %s AND t >= %s AND t < %s ORDER BY t
"""
COUNT_WINDOWS = "SELECT count(*) FROM embeddings WHERE sensor_id = %s"


@dataclass(frozen=True)
class InsertResult:
    accepted: int
    duplicates: int


def insert_windows(conn: psycopg.Connection, sensor_id: UUID, times_us: np.ndarray,
                   values: np.ndarray) -> InsertResult:
    """Stage and merge one validated batch; queue it for scoring when anything was new."""
    n = len(times_us)
    if n == 0:
        return InsertResult(0, 0)
    conn.execute(CREATE_STAGE)
    conn.execute(CLEAR_STAGE)
    with conn.cursor() as cur, cur.copy(COPY_STAGE) as copy:
        copy.write(copy_payload(sensor_id, times_us, values))
    accepted = conn.execute(MERGE_STAGE).rowcount
    if accepted > 0:
        t_min, t_max = _to_datetime(int(times_us.min())), _to_datetime(int(times_us.max()))
        conn.execute(RECORD_BATCH, (sensor_id, t_min, t_max, accepted))
        conn.execute(TOUCH_SENSOR, (sensor_id,))
        conn.execute(NOTIFY_INGEST, (INGEST_CHANNEL, str(sensor_id)))
    return InsertResult(accepted, n - accepted)


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


def _to_datetime(us: int) -> datetime:
    from datetime import UTC, timedelta

    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


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
