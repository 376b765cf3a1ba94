"""Re-embedding jobs (`reembed_jobs`): a queue claimed with FOR UPDATE SKIP LOCKED; a job
is owned through (id, attempts) like training jobs, and progresses through `done_until`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

COLUMNS = """id, sensor_id, kind, start_at, end_at, state, done_until, windows, error,
attempts, created_at, started_at, finished_at"""
INSERT_JOB = f"""
INSERT INTO reembed_jobs (sensor_id, kind, start_at, end_at) VALUES (%s, %s, %s, %s)
ON CONFLICT (sensor_id) WHERE state IN ('queued', 'running') DO NOTHING
RETURNING {COLUMNS}
"""
SELECT_JOB = f"SELECT {COLUMNS} FROM reembed_jobs WHERE id = %s AND sensor_id = %s"
# A queued job, or a running one whose worker stopped sending heartbeats (it resumes).
CLAIM_JOB = """
UPDATE reembed_jobs SET state = 'running', attempts = attempts + 1, heartbeat_at = now(),
                        started_at = coalesce(started_at, now())
WHERE id = (SELECT id FROM reembed_jobs
            WHERE state = 'queued'
               OR (state = 'running' AND heartbeat_at < now() - make_interval(secs => %s))
            ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, sensor_id, kind, start_at, end_at, coalesce(done_until, start_at), attempts
"""
ADVANCE = """
UPDATE reembed_jobs SET done_until = %s, windows = windows + %s, heartbeat_at = now()
WHERE id = %s AND attempts = %s AND state = 'running'
"""
FINISH = """
UPDATE reembed_jobs SET state = %s, error = %s, finished_at = now(), done_until = end_at
WHERE id = %s AND attempts = %s AND state = 'running'
"""
FAIL_EXHAUSTED = """
UPDATE reembed_jobs SET state = 'failed', finished_at = now(),
    error = 'failed: the worker running it died on every one of its attempts'
WHERE state = 'running' AND attempts >= %s AND heartbeat_at < now() - make_interval(secs => %s)
"""
DELETE_WINDOWS = "DELETE FROM embeddings WHERE sensor_id = %s AND t >= %s AND t <= %s"
DELETE_ALL_WINDOWS = "DELETE FROM embeddings WHERE sensor_id = %s"
SWITCH_KIND = """
UPDATE sensors SET embedding_kind = %s, dim = %s, window_s = %s, updated_at = now()
WHERE id = %s
"""


@dataclass(frozen=True)
class ClaimedReembed:
    id: UUID
    sensor_id: UUID
    kind: str
    start: datetime
    end: datetime
    resume_at: datetime
    attempts: int


def insert(conn: psycopg.Connection, sensor_id: UUID, kind: str, start: datetime,
           end: datetime) -> dict[str, Any] | None:
    """The queued job, or None when the sensor already has an unfinished one."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(INSERT_JOB, (sensor_id, kind, start, end)).fetchone()


def get(conn: psycopg.Connection, sensor_id: UUID, job_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_JOB, (job_id, sensor_id)).fetchone()


def claim(conn: psycopg.Connection, stale_s: float) -> ClaimedReembed | None:
    row = conn.execute(CLAIM_JOB, (stale_s,)).fetchone()
    return ClaimedReembed(*row) if row else None


def advance(conn: psycopg.Connection, job: ClaimedReembed, done_until: datetime,
            windows: int) -> bool:
    """Record progress in the transaction that wrote the windows; False when the job is no
    longer this worker's (then the caller rolls back)."""
    return conn.execute(ADVANCE, (done_until, windows, job.id, job.attempts)).rowcount == 1


def finish(conn: psycopg.Connection, job: ClaimedReembed, error: str | None) -> None:
    state = "failed" if error else "succeeded"
    conn.execute(FINISH, (state, error, job.id, job.attempts))


def fail_exhausted(conn: psycopg.Connection, max_attempts: int, stale_s: float) -> int:
    return conn.execute(FAIL_EXHAUSTED, (max_attempts, stale_s)).rowcount


def delete_windows(conn: psycopg.Connection, sensor_id: UUID, first: datetime,
                   last: datetime) -> int:
    return conn.execute(DELETE_WINDOWS, (sensor_id, first, last)).rowcount


def delete_all_windows(conn: psycopg.Connection, sensor_id: UUID) -> int:
    return conn.execute(DELETE_ALL_WINDOWS, (sensor_id,)).rowcount


def switch_kind(conn: psycopg.Connection, sensor_id: UUID, kind: str, dim: int,
                window_s: float) -> None:
    conn.execute(SWITCH_KIND, (kind, dim, window_s, sensor_id))
