from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

INSERT_KEY = """
INSERT INTO api_keys (name, role, key_hash, prefix) VALUES (%s, %s, %s, %s)
RETURNING id, name, role, prefix, created_at, revoked_at
"""
SELECT_ACTIVE_BY_HASH = """
SELECT id, role FROM api_keys WHERE key_hash = %s AND revoked_at IS NULL
"""
LIST_KEYS = """
SELECT id, name, role, prefix, created_at, revoked_at FROM api_keys
ORDER BY created_at, id LIMIT %s OFFSET %s
"""
REVOKE_KEY = """
UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s
RETURNING id, name, role, prefix, created_at, revoked_at
"""


def insert(conn: psycopg.Connection, name: str, role: str, key_hash: bytes,
           prefix: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(INSERT_KEY, (name, role, key_hash, prefix)).fetchone()
    assert row is not None
    return row


def active_role(conn: psycopg.Connection, key_hash: bytes) -> tuple[UUID, str] | None:
    row = conn.execute(SELECT_ACTIVE_BY_HASH, (key_hash,)).fetchone()
    return (row[0], row[1]) if row else None


def list_keys(conn: psycopg.Connection, limit: int, offset: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_KEYS, (limit, offset)).fetchall()


def revoke(conn: psycopg.Connection, key_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(REVOKE_KEY, (key_id,)).fetchone()
