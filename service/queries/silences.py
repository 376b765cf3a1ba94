"""Silences (maintenance windows) per machine."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

COLUMNS = "id, machine_id, start_at, end_at, reason, created_at"
INSERT_SILENCE = f"""
INSERT INTO silences (machine_id, start_at, end_at, reason) VALUES (%s, %s, %s, %s)
RETURNING {COLUMNS}
"""
LIST_SILENCES = f"""
SELECT {COLUMNS} FROM silences
WHERE machine_id = %(machine_id)s AND (NOT %(active)s OR (start_at <= now() AND end_at > now()))
ORDER BY start_at DESC, id LIMIT %(limit)s OFFSET %(offset)s
"""
DELETE_SILENCE = f"""
DELETE FROM silences WHERE id = %s AND machine_id = %s RETURNING {COLUMNS}
"""


def insert(conn: psycopg.Connection, machine_id: UUID, start: datetime, end: datetime,
           reason: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(INSERT_SILENCE, (machine_id, start, end, reason)).fetchone()
    assert row is not None
    return row


def list_silences(conn: psycopg.Connection, machine_id: UUID, active: bool, limit: int,
                  offset: int) -> list[dict[str, Any]]:
    params = {"machine_id": machine_id, "active": active, "limit": limit, "offset": offset}
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_SILENCES, params).fetchall()


def delete(conn: psycopg.Connection, machine_id: UUID, silence_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(DELETE_SILENCE, (silence_id, machine_id)).fetchone()
