"""Dashboard sessions: only SHA-256 digests of the session id and of the signing-in key."""

from __future__ import annotations

from datetime import datetime

import psycopg

INSERT_SESSION = """
INSERT INTO ui_sessions (id_hash, key_hash, expires_at) VALUES (%s, %s, %s)
"""
# A session is live until it expires or is signed out; the key it names is checked by the
# caller on every request (revoked keys end their sessions).
SELECT_LIVE_KEY = """
SELECT key_hash FROM ui_sessions
WHERE id_hash = %s AND revoked_at IS NULL AND expires_at > now()
"""
REVOKE_SESSION = """
UPDATE ui_sessions SET revoked_at = coalesce(revoked_at, now()) WHERE id_hash = %s
"""
DELETE_EXPIRED = "DELETE FROM ui_sessions WHERE expires_at < %s"


def insert(conn: psycopg.Connection, id_hash: bytes, key_hash: bytes,
           expires_at: datetime) -> None:
    conn.execute(INSERT_SESSION, (id_hash, key_hash, expires_at))


def live_key_hash(conn: psycopg.Connection, id_hash: bytes) -> bytes | None:
    """The digest of the key behind a live session, or None."""
    row = conn.execute(SELECT_LIVE_KEY, (id_hash,)).fetchone()
    return bytes(row[0]) if row else None


def revoke(conn: psycopg.Connection, id_hash: bytes) -> None:
    conn.execute(REVOKE_SESSION, (id_hash,))


def delete_expired(conn: psycopg.Connection, before: datetime) -> int:
    return conn.execute(DELETE_EXPIRED, (before,)).rowcount
