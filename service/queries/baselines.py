"""Normal-operation time ranges of a machine (`baselines`): detector training data."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

BASELINE_COLUMNS = "id, machine_id, start_at, end_at, note, source, created_at"
INSERT_BASELINE = f"""
INSERT INTO baselines (machine_id, start_at, end_at, note, source)
VALUES (%s, %s, %s, %s, %s)
RETURNING {BASELINE_COLUMNS}
"""
LIST_BASELINES = f"""
SELECT {BASELINE_COLUMNS} FROM baselines WHERE machine_id = %s
ORDER BY start_at, id LIMIT %s OFFSET %s
"""
DELETE_BASELINE = f"""
DELETE FROM baselines WHERE machine_id = %s AND id = %s RETURNING {BASELINE_COLUMNS}
"""


def insert_baseline(conn: psycopg.Connection, machine_id: UUID, start: datetime,
                    end: datetime, note: str | None, source: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(INSERT_BASELINE, (machine_id, start, end, note, source)).fetchone()
    assert row is not None
    return row


def list_baselines(conn: psycopg.Connection, machine_id: UUID, limit: int,
                   offset: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_BASELINES, (machine_id, limit, offset)).fetchall()


def delete_baseline(conn: psycopg.Connection, machine_id: UUID,
                    baseline_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(DELETE_BASELINE, (machine_id, baseline_id)).fetchone()
