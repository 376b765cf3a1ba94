"""Retention: dropping whole chunks of the time-series hypertables (cheap: no row deletes,
no bloat) and deleting old rows of the small tables."""

from __future__ import annotations

from datetime import datetime

import psycopg

RETENTION_LOCK_KEY = 0x6561_7273_686F_7402  # "earshot" + 2
# drop_chunks removes only chunks whose whole range is older than the cutoff.
DROP_CHUNKS = "SELECT count(*) FROM drop_chunks(%s::regclass, older_than => %s::timestamptz)"
# Rows of the tables that grow with traffic go in batches of at most %(limit)s rows, each
# in its own short transaction: an hour's worth of a busy fleet is never one huge DELETE
# holding locks and bloating WAL. SKIP LOCKED: a row another transaction holds is taken
# at the next run.
# A message goes once none of its deliveries is pending (deliveries and their attempts
# cascade): a message still being retried, or redelivered, stays whatever its age.
DELETE_FINISHED_WEBHOOK_MESSAGES = """
DELETE FROM webhook_messages WHERE id IN (
    SELECT m.id FROM webhook_messages m
    WHERE m.created_at < %(before)s
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d
                      WHERE d.message_id = m.id AND d.state = 'pending')
    ORDER BY m.created_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
"""
# Finished jobs; one that produced a model stays as long as that model (its provenance).
DELETE_FINISHED_JOBS = """
DELETE FROM jobs WHERE id IN (
    SELECT j.id FROM jobs j
    WHERE j.state IN ('succeeded', 'failed') AND j.finished_at < %(before)s
      AND NOT EXISTS (SELECT 1 FROM models m WHERE m.job_id = j.id)
    ORDER BY j.finished_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
"""
DELETE_INGEST_ERRORS_BATCH = """
DELETE FROM ingest_errors WHERE id IN (
    SELECT id FROM ingest_errors WHERE received_at < %(before)s
    ORDER BY received_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
"""
# Resolved alerts only (a firing one stays, however old); opt-in, as alert history with
# its verdicts is what reliability engineers audit (Settings.alerts_retention_days).
DELETE_RESOLVED_ALERTS = """
DELETE FROM alerts WHERE id IN (
    SELECT id FROM alerts WHERE state = 'resolved' AND resolved_at < %(before)s
    ORDER BY resolved_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED)
"""
BATCHED_DELETES = {
    "webhook_messages": DELETE_FINISHED_WEBHOOK_MESSAGES,
    "jobs": DELETE_FINISHED_JOBS,
    "ingest_errors": DELETE_INGEST_ERRORS_BATCH,
    "alerts": DELETE_RESOLVED_ALERTS,
}
DELETE_OLD_ROLLUPS = "DELETE FROM score_rollups WHERE bucket < %s"
# Queue rows whose windows are gone can never be scored.
DELETE_EXPIRED_BATCHES = "DELETE FROM ingest_batches WHERE t_max < %s"
HYPERTABLES = ("embeddings", "scores", "predictions", "audio_chunks")
# drop_chunks needs an exclusive lock on each chunk: a long reader would otherwise stall
# it (and every writer queued behind it). Giving up means trying again at the next run.
LOCK_TIMEOUT = "SELECT set_config('lock_timeout', %s, true)"


def limit_lock_wait(conn: psycopg.Connection, seconds: float) -> None:
    """For the rest of the transaction, fail instead of waiting longer for a lock."""
    conn.execute(LOCK_TIMEOUT, (f"{int(seconds * 1000)}ms",))


def drop_chunks(conn: psycopg.Connection, hypertable: str, older_than: datetime) -> int:
    """Drop the chunks of `hypertable` (one of HYPERTABLES) entirely older than the cutoff;
    returns how many were dropped."""
    if hypertable not in HYPERTABLES:
        raise ValueError(f"not a retention-managed hypertable: {hypertable}")
    row = conn.execute(DROP_CHUNKS, (hypertable, older_than)).fetchone()
    return int(row[0]) if row else 0


def delete_rollups(conn: psycopg.Connection, older_than: datetime) -> int:
    return conn.execute(DELETE_OLD_ROLLUPS, (older_than,)).rowcount


def delete_expired_batches(conn: psycopg.Connection, older_than: datetime) -> int:
    return conn.execute(DELETE_EXPIRED_BATCHES, (older_than,)).rowcount


def delete_batch(conn: psycopg.Connection, table: str, older_than: datetime,
                 limit: int) -> int:
    """Delete up to `limit` expired rows of `table` (a key of BATCHED_DELETES); the number
    deleted."""
    return conn.execute(BATCHED_DELETES[table], {"before": older_than, "limit": limit}).rowcount
