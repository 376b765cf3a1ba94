"""Retention: dropping whole chunks of the time-series hypertables (cheap: no row deletes,
no bloat) and deleting old rows of the small tables."""

from __future__ import annotations

from datetime import datetime

import psycopg

RETENTION_LOCK_KEY = 0x6561_7273_686F_7402  # "earshot" + 2
# drop_chunks removes only chunks whose whole range is older than the cutoff.
DROP_CHUNKS = "SELECT count(*) FROM drop_chunks(%s::regclass, older_than => %s::timestamptz)"
DELETE_OLD_INGEST_ERRORS = "DELETE FROM ingest_errors WHERE received_at < %s"
DELETE_OLD_ROLLUPS = "DELETE FROM score_rollups WHERE bucket < %s"
# Queue rows whose windows are gone can never be scored.
DELETE_EXPIRED_BATCHES = "DELETE FROM ingest_batches WHERE t_max < %s"
HYPERTABLES = ("embeddings", "scores", "predictions")
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


def delete_ingest_errors(conn: psycopg.Connection, older_than: datetime) -> int:
    return conn.execute(DELETE_OLD_INGEST_ERRORS, (older_than,)).rowcount


def delete_rollups(conn: psycopg.Connection, older_than: datetime) -> int:
    return conn.execute(DELETE_OLD_ROLLUPS, (older_than,)).rowcount


def delete_expired_batches(conn: psycopg.Connection, older_than: datetime) -> int:
    return conn.execute(DELETE_EXPIRED_BATCHES, (older_than,)).rowcount
