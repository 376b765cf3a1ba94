"""Training jobs (`jobs`): a queue claimed with FOR UPDATE SKIP LOCKED.

A job is owned by the runner that claimed it through the pair (id, attempts): every state
change after the claim checks both, so a runner whose job was re-queued (heartbeat gone
stale) and claimed again elsewhere can no longer finish it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

JOB_COLUMNS = """
id, machine_id, target, trigger, slot, state, error, model_version, attempts, created_at,
started_at, finished_at, heartbeat_at
"""
INSERT_MANUAL_JOB = f"""
INSERT INTO jobs (machine_id, target, trigger) VALUES (%s, %s, 'manual')
RETURNING {JOB_COLUMNS}
"""
SELECT_QUEUED_MANUAL_JOB = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE machine_id = %s AND target = %s AND trigger = 'manual' AND state = 'queued'
ORDER BY created_at LIMIT 1
"""
# The unique (machine_id, target, slot) makes this the once-per-slot guard: of any number
# of schedulers firing for one slot, exactly one gets a row back.
INSERT_SLOT_JOB = """
INSERT INTO jobs (machine_id, target, trigger, slot) VALUES (%s, %s, 'cron', %s)
ON CONFLICT (machine_id, target, slot) DO NOTHING
RETURNING id
"""
CLAIM_JOB = """
UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = now(),
                heartbeat_at = now(), error = NULL
WHERE id = (SELECT id FROM jobs WHERE state = 'queued'
            ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, machine_id, target, trigger, slot, attempts
"""
HEARTBEAT = """
UPDATE jobs SET heartbeat_at = now() WHERE id = %s AND attempts = %s AND state = 'running'
"""
LOCK_OWNED_JOB = """
SELECT 1 FROM jobs WHERE id = %s AND attempts = %s AND state = 'running' FOR UPDATE
"""
MARK_SUCCEEDED = """
UPDATE jobs SET state = 'succeeded', model_version = %s, error = NULL, finished_at = now()
WHERE id = %s AND attempts = %s AND state = 'running'
"""
MARK_FAILED = """
UPDATE jobs SET state = 'failed', error = %s, finished_at = now()
WHERE id = %s AND attempts = %s AND state = 'running'
"""
RELEASE_JOB = """
UPDATE jobs SET state = 'queued', heartbeat_at = NULL, error = %s
WHERE id = %s AND attempts = %s AND state = 'running'
"""
REQUEUE_STALE = """
UPDATE jobs SET state = 'queued', heartbeat_at = NULL, error = %(reason)s
WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => %(stale_s)s)
  AND attempts < %(max_attempts)s
RETURNING id
"""
FAIL_STALE = f"""
UPDATE jobs SET state = 'failed', finished_at = now(), error = %(reason)s
WHERE state = 'running' AND heartbeat_at < now() - make_interval(secs => %(stale_s)s)
  AND attempts >= %(max_attempts)s
RETURNING {JOB_COLUMNS}
"""
SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s"
LIST_MACHINE_JOBS = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE machine_id = %s
ORDER BY created_at DESC, id LIMIT %s OFFSET %s
"""


@dataclass(frozen=True)
class ClaimedJob:
    id: UUID
    machine_id: UUID
    target: str
    trigger: str
    slot: datetime | None
    attempts: int


def insert_manual(conn: psycopg.Connection, machine_id: UUID, target: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(INSERT_MANUAL_JOB, (machine_id, target)).fetchone()
    assert row is not None
    return row


def queued_manual(conn: psycopg.Connection, machine_id: UUID,
                  target: str) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_QUEUED_MANUAL_JOB, (machine_id, target)).fetchone()


def insert_slot(conn: psycopg.Connection, machine_id: UUID, target: str,
                slot: datetime) -> UUID | None:
    """The new job's id, or None when another scheduler already queued this slot."""
    row = conn.execute(INSERT_SLOT_JOB, (machine_id, target, slot)).fetchone()
    return row[0] if row else None


def claim(conn: psycopg.Connection) -> ClaimedJob | None:
    row = conn.execute(CLAIM_JOB).fetchone()
    return ClaimedJob(*row) if row else None


def heartbeat(conn: psycopg.Connection, job_id: UUID, attempts: int) -> bool:
    return conn.execute(HEARTBEAT, (job_id, attempts)).rowcount == 1


def lock_owned(conn: psycopg.Connection, job_id: UUID, attempts: int) -> bool:
    """Lock the job row if this claim still owns it (for the finishing transaction)."""
    return conn.execute(LOCK_OWNED_JOB, (job_id, attempts)).fetchone() is not None


def mark_succeeded(conn: psycopg.Connection, job_id: UUID, attempts: int,
                   version: int) -> bool:
    return conn.execute(MARK_SUCCEEDED, (version, job_id, attempts)).rowcount == 1


def mark_failed(conn: psycopg.Connection, job_id: UUID, attempts: int, error: str) -> bool:
    return conn.execute(MARK_FAILED, (error, job_id, attempts)).rowcount == 1


def release(conn: psycopg.Connection, job_id: UUID, attempts: int, reason: str) -> bool:
    return conn.execute(RELEASE_JOB, (reason, job_id, attempts)).rowcount == 1


def requeue_stale(conn: psycopg.Connection, stale_s: float, max_attempts: int,
                  reason: str) -> list[UUID]:
    params = {"stale_s": stale_s, "max_attempts": max_attempts, "reason": reason}
    return [row[0] for row in conn.execute(REQUEUE_STALE, params).fetchall()]


def fail_stale(conn: psycopg.Connection, stale_s: float, max_attempts: int,
               reason: str) -> list[dict[str, Any]]:
    params = {"stale_s": stale_s, "max_attempts": max_attempts, "reason": reason}
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(FAIL_STALE, params).fetchall()


def get_job(conn: psycopg.Connection, job_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_JOB, (job_id,)).fetchone()


def list_machine_jobs(conn: psycopg.Connection, machine_id: UUID, limit: int,
                      offset: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_MACHINE_JOBS, (machine_id, limit, offset)).fetchall()
