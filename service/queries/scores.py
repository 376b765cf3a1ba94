"""Scores: the scorer's work queue (`ingest_batches`), score rows, and the reads behind the
scores and health endpoints.

The queue claim joins each batch row to its sensor and the machine's active detector and
classifier versions in one statement, so a scorer iteration costs one query per table, not one per
machine or window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

LISTEN_INGEST = "LISTEN earshot_ingest"
CLAIM_BATCHES = """
SELECT b.id, b.sensor_id, b.t_min, b.t_max, b.n,
       s.machine_id, s.embedding_kind, s.dim, m.version, c.version
FROM ingest_batches b
LEFT JOIN sensors s ON s.id = b.sensor_id
LEFT JOIN models m ON m.machine_id = s.machine_id AND m.target = 'detector' AND m.active
LEFT JOIN models c ON c.machine_id = s.machine_id AND c.target = 'classifier' AND c.active
ORDER BY b.id
LIMIT %s
FOR UPDATE OF b SKIP LOCKED
"""
# Rows of the claimed sensors up to the newest claimed id: the claimed ones and any older
# one another scorer holds (a claim takes the oldest free rows, so that is all there is).
SENSOR_ROWS_UP_TO = """
SELECT b.sensor_id, b.id FROM ingest_batches b
JOIN (SELECT DISTINCT unnest(%s::uuid[]) AS sensor_id) c USING (sensor_id)
WHERE b.id <= %s
"""
# One LATERAL index range scan per batch row; TimescaleDB excludes chunks at run time.
READ_BATCH_WINDOWS = """
SELECT r.ord::int, w.t, w.v
FROM unnest(%s::uuid[], %s::timestamptz[], %s::timestamptz[], %s::int[])
     WITH ORDINALITY AS r(sensor_id, t_min, t_max, lim, ord)
CROSS JOIN LATERAL (
    SELECT e.t, e.v FROM embeddings e
    WHERE e.sensor_id = r.sensor_id AND e.t >= r.t_min AND e.t <= r.t_max
    ORDER BY e.t
    LIMIT r.lim
) w
ORDER BY r.ord, w.t
"""
DELETE_BATCHES = "DELETE FROM ingest_batches WHERE id = ANY(%s)"
SHRINK_BATCHES = """
UPDATE ingest_batches b SET t_min = u.t_min, n = greatest(b.n - u.done, 0)
FROM unnest(%s::bigint[], %s::timestamptz[], %s::int[]) AS u(id, t_min, done)
WHERE b.id = u.id
"""
CREATE_SCORE_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS score_stage (
    machine_id uuid, sensor_id uuid, t timestamptz, model_version integer,
    score real, threshold real, anomalous boolean
) ON COMMIT DELETE ROWS
"""
CLEAR_SCORE_STAGE = "TRUNCATE score_stage"
COPY_SCORE_STAGE = """
COPY score_stage (machine_id, sensor_id, t, model_version, score, threshold, anomalous)
FROM STDIN WITH (FORMAT binary)
"""
# Sorted inserts keep two concurrent scorers from deadlocking on overlapping ranges; the
# dirty minute rows commit with the scores, so a timeline never misses a scored window.
MERGE_SCORES = """
WITH ins AS (
    INSERT INTO scores (machine_id, sensor_id, t, model_version, score, threshold, anomalous)
    SELECT machine_id, sensor_id, t, model_version, score, threshold, anomalous
    FROM score_stage ORDER BY sensor_id, t, model_version
    ON CONFLICT (sensor_id, t, model_version) DO NOTHING
    RETURNING machine_id, model_version, t, sensor_id, score, threshold, anomalous
), dirty AS (
    INSERT INTO rollup_dirty (machine_id, bucket)
    SELECT DISTINCT machine_id, time_bucket('1 minute', t) FROM ins ORDER BY 1, 2
    ON CONFLICT DO NOTHING
)
SELECT machine_id, model_version, t, sensor_id, score, threshold, anomalous
FROM ins ORDER BY machine_id, model_version, t, sensor_id
"""
SCORES_PAGE = """
SELECT t, sensor_id, score, threshold, anomalous, model_version FROM scores
WHERE machine_id = %(machine_id)s AND t >= %(start)s AND t < %(end)s
  AND t >= %(after_t)s AND (t, sensor_id, model_version) > (%(after_t)s, %(after_s)s, %(after_v)s)
ORDER BY t, sensor_id, model_version
LIMIT %(limit)s
"""
LATEST_SCORE = """
SELECT t, sensor_id, score, threshold, anomalous, model_version FROM scores
WHERE machine_id = %s ORDER BY t DESC LIMIT 1
"""
RECENT_COUNTS = """
SELECT count(*), count(*) FILTER (WHERE anomalous) FROM scores
WHERE machine_id = %s AND t > %s AND t <= %s
"""
ACTIVE_DETECTOR = """
SELECT version, algorithm, threshold, embedding_kind, dim, activated_at, trained_at
FROM models WHERE machine_id = %s AND target = 'detector' AND active
"""


@dataclass(frozen=True)
class ClaimedBatch:
    id: int
    sensor_id: UUID
    t_min: datetime
    t_max: datetime
    n: int
    machine_id: UUID | None
    embedding_kind: str | None
    dim: int | None
    active_version: int | None
    classifier_version: int | None = None  # the machine's active classifier (issue 6)


@dataclass(frozen=True)
class ShrunkBatch:
    id: int
    t_min: datetime
    done: int


def listen_ingest(conn: psycopg.Connection) -> None:
    conn.execute(LISTEN_INGEST)


def claim_batches(conn: psycopg.Connection, limit: int) -> list[ClaimedBatch]:
    """Lock up to `limit` queued batches (oldest first) that no other scorer holds."""
    rows = conn.execute(CLAIM_BATCHES, (limit,)).fetchall()
    return [ClaimedBatch(*row) for row in rows]


def oldest_unclaimed(conn: psycopg.Connection, sensors: list[UUID], claimed: list[int]
                     ) -> dict[UUID, int]:
    """Per sensor, the oldest queued batch id of `sensors`, older than the newest of
    `claimed`, that is not in `claimed` (another scorer holds it): a plain read, which
    row locks do not block."""
    mine, oldest = set(claimed), dict[UUID, int]()
    for sensor_id, batch_id in conn.execute(SENSOR_ROWS_UP_TO, (sensors, max(claimed))):
        if batch_id not in mine and batch_id < oldest.get(sensor_id, batch_id + 1):
            oldest[sensor_id] = batch_id
    return oldest


def read_batch_windows(conn: psycopg.Connection, batches: list[ClaimedBatch],
                       limits: list[int]) -> list[tuple[int, datetime, bytes]]:
    """(batch index, t, packed vector) of the first `limits[i]` windows of each batch, in
    batch then time order."""
    params = ([b.sensor_id for b in batches], [b.t_min for b in batches],
              [b.t_max for b in batches], limits)
    with conn.cursor(binary=True) as cur:
        rows = cur.execute(READ_BATCH_WINDOWS, params).fetchall()
    return [(int(row[0]) - 1, row[1], bytes(row[2])) for row in rows]


def finish_batches(conn: psycopg.Connection, done: list[int], shrunk: list[ShrunkBatch]) -> None:
    """Delete fully scored batches; move the start of partly scored ones past what is done."""
    if done:
        conn.execute(DELETE_BATCHES, (done,))
    if shrunk:
        conn.execute(SHRINK_BATCHES, ([s.id for s in shrunk], [s.t_min for s in shrunk],
                                      [s.done for s in shrunk]))


def insert_scores(conn: psycopg.Connection, copy_payload: bytes) -> list[tuple[Any, ...]]:
    """Store staged score rows (binary COPY payload), skipping (window, version) pairs that
    are already scored. Returns only the rows this call inserted, ordered by machine,
    model version, t: (machine_id, model_version, t, sensor_id, score, threshold,
    anomalous)."""
    conn.execute(CREATE_SCORE_STAGE)
    conn.execute(CLEAR_SCORE_STAGE)
    with conn.cursor() as cur, cur.copy(COPY_SCORE_STAGE) as copy:
        copy.write(copy_payload)
    return conn.execute(MERGE_SCORES).fetchall()



def page(conn: psycopg.Connection, machine_id: UUID, start: datetime, end: datetime,
         after: tuple[datetime, UUID, int] | None, limit: int) -> list[dict[str, Any]]:
    """Score rows in [start, end) after the keyset `after`, ordered by (t, sensor, version)."""
    after_t, after_s, after_v = after or (start, UUID(int=0), -1)
    params = {"machine_id": machine_id, "start": start, "end": end, "after_t": after_t,
              "after_s": after_s, "after_v": after_v, "limit": limit}
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SCORES_PAGE, params).fetchall()


def latest(conn: psycopg.Connection, machine_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LATEST_SCORE, (machine_id,)).fetchone()


def recent_counts(conn: psycopg.Connection, machine_id: UUID, since: datetime,
                  until: datetime) -> tuple[int, int]:
    """(windows, anomalous windows) scored in (since, until]."""
    row = conn.execute(RECENT_COUNTS, (machine_id, since, until)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def active_detector(conn: psycopg.Connection, machine_id: UUID) -> dict[str, Any] | None:
    """Summary of the machine's active detector model (never the artifact)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(ACTIVE_DETECTOR, (machine_id,)).fetchone()
