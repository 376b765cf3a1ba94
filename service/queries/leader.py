"""The leader lock: a session-level advisory lock held by the one worker process that runs
the periodic duties. It is released by PostgreSQL when that session ends, however the
process died."""

from __future__ import annotations

import psycopg

LEADER_LOCK_KEY = 0x6561_7273_686F_7410  # "earshot" + 0x10
TRY_LOCK = "SELECT pg_try_advisory_lock(%s)"
PING = "SELECT 1"
# A bigint advisory key is stored as two 32-bit halves (classid, objid), objsubid 1.
CURRENT_LEADER = """
SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid::bigint = (%(key)s >> 32) AND l.objid::bigint = (%(key)s & 4294967295)
"""


def try_lock(conn: psycopg.Connection) -> bool:
    """Take the leader lock for the session of `conn` if no other session holds it."""
    row = conn.execute(TRY_LOCK, (LEADER_LOCK_KEY,)).fetchone()
    return bool(row and row[0])


def ping(conn: psycopg.Connection) -> None:
    """Raises psycopg.Error when the session (and with it the lock) is gone."""
    conn.execute(PING).fetchone()


def current_leader(conn: psycopg.Connection) -> str | None:
    """The application_name of the session holding the leader lock, None when no one
    leads."""
    row = conn.execute(CURRENT_LEADER, {"key": LEADER_LOCK_KEY}).fetchone()
    return str(row[0]) if row else None
