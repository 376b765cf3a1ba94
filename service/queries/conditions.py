"""Operating-condition time ranges of a machine (`machine_conditions`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

CONDITION_COLUMNS = "id, machine_id, start_at, end_at, name, attributes, source, created_at"
INSERT_CONDITION = f"""
INSERT INTO machine_conditions (machine_id, start_at, end_at, name, attributes, source)
VALUES (%s, %s, %s, %s, %s, %s)
RETURNING {CONDITION_COLUMNS}
"""
LIST_CONDITIONS = f"""
SELECT {CONDITION_COLUMNS} FROM machine_conditions WHERE machine_id = %s
ORDER BY start_at, id LIMIT %s OFFSET %s
"""
DELETE_CONDITION = f"""
DELETE FROM machine_conditions WHERE machine_id = %s AND id = %s
RETURNING {CONDITION_COLUMNS}
"""
# Training reads every range overlapping the training data; newest declaration wins where
# ranges overlap (see service.training.conditions).
SELECT_OVERLAPPING = """
SELECT start_at, end_at, name FROM machine_conditions
WHERE machine_id = %s AND end_at > %s AND start_at <= %s
ORDER BY created_at, id
"""


def insert_condition(conn: psycopg.Connection, machine_id: UUID, start: datetime,
                     end: datetime, name: str, attributes: dict[str, Any],
                     source: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(INSERT_CONDITION, (machine_id, start, end, name, Jsonb(attributes),
                                             source)).fetchone()
    assert row is not None
    return row


def list_conditions(conn: psycopg.Connection, machine_id: UUID, limit: int,
                    offset: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_CONDITIONS, (machine_id, limit, offset)).fetchall()


def delete_condition(conn: psycopg.Connection, machine_id: UUID,
                     condition_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(DELETE_CONDITION, (machine_id, condition_id)).fetchone()


def overlapping(conn: psycopg.Connection, machine_id: UUID, start: datetime,
                end: datetime) -> list[tuple[datetime, datetime, str]]:
    """(start, end, name) of the ranges touching [start, end], oldest declaration first."""
    return [(r[0], r[1], r[2]) for r in conn.execute(SELECT_OVERLAPPING,
                                                     (machine_id, start, end))]
