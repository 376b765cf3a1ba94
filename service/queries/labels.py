"""Labelled time ranges of a machine (`labels`): classifier training data."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

LABEL_COLUMNS = "id, machine_id, start_at, end_at, label, created_at"
INSERT_LABEL = f"""
INSERT INTO labels (machine_id, start_at, end_at, label) VALUES (%s, %s, %s, %s)
RETURNING {LABEL_COLUMNS}
"""


def insert_label(conn: psycopg.Connection, machine_id: UUID, start: datetime, end: datetime,
                 label: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(INSERT_LABEL, (machine_id, start, end, label)).fetchone()
    assert row is not None
    return row
