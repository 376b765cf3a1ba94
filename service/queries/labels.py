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
# Serialises label writes of one machine, so two requests cannot both pass the
# contradiction check and then store contradicting ranges.
LOCK_LABELS = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
# Half-open ranges: [a, b) and [b, c) touch but do not overlap.
CONFLICTS = f"""
SELECT {LABEL_COLUMNS} FROM labels
WHERE machine_id = %s AND start_at < %s AND end_at > %s AND label <> %s
ORDER BY start_at, id LIMIT %s
"""
LIST_LABELS = f"""
SELECT {LABEL_COLUMNS} FROM labels
WHERE machine_id = %(machine_id)s
  AND (%(label)s::text IS NULL OR label = %(label)s)
  AND (%(end)s::timestamptz IS NULL OR start_at < %(end)s)
  AND (%(start)s::timestamptz IS NULL OR end_at > %(start)s)
ORDER BY start_at, id LIMIT %(limit)s OFFSET %(offset)s
"""
DELETE_LABEL = f"""
DELETE FROM labels WHERE machine_id = %s AND id = %s RETURNING {LABEL_COLUMNS}
"""
# A window belongs to a range when its centre lies inside it (see training_data); one
# index probe per sensor on the (sensor_id, t) key.
HAS_WINDOWS = """
SELECT EXISTS (
    SELECT 1 FROM sensors s CROSS JOIN LATERAL (
        SELECT 1 FROM embeddings e
        WHERE e.sensor_id = s.id
          AND e.t >= %(start)s - make_interval(secs => s.window_s / 2)
          AND e.t < %(end)s - make_interval(secs => s.window_s / 2)
        LIMIT 1) AS w
    WHERE s.machine_id = %(machine_id)s)
"""
SELECT_MACHINE_LABELS = f"""
SELECT {LABEL_COLUMNS} FROM labels
WHERE machine_id = %s AND (%s::timestamptz IS NULL OR end_at > %s)
ORDER BY start_at, id
"""


def insert_label(conn: psycopg.Connection, machine_id: UUID, start: datetime, end: datetime,
                 label: str) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(INSERT_LABEL, (machine_id, start, end, label)).fetchone()
    assert row is not None
    return row


def lock_labels(conn: psycopg.Connection, machine_id: UUID) -> None:
    conn.execute(LOCK_LABELS, (f"labels:{machine_id}",))


def conflicts(conn: psycopg.Connection, machine_id: UUID, start: datetime, end: datetime,
              label: str, limit: int = 10) -> list[dict[str, Any]]:
    """Ranges of the machine overlapping [start, end) with a different label."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(CONFLICTS, (machine_id, end, start, label, limit)).fetchall()


def list_labels(conn: psycopg.Connection, machine_id: UUID, filters: dict[str, Any],
                limit: int, offset: int) -> list[dict[str, Any]]:
    params = {"machine_id": machine_id, "label": None, "start": None, "end": None,
              **filters, "limit": limit, "offset": offset}
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_LABELS, params).fetchall()


def delete_label(conn: psycopg.Connection, machine_id: UUID,
                 label_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(DELETE_LABEL, (machine_id, label_id)).fetchone()


def has_windows(conn: psycopg.Connection, machine_id: UUID, start: datetime,
                end: datetime) -> bool:
    """Whether any stored window of the machine's sensors has its centre in [start, end)."""
    row = conn.execute(HAS_WINDOWS, {"machine_id": machine_id, "start": start,
                                     "end": end}).fetchone()
    return bool(row and row[0])


def machine_labels(conn: psycopg.Connection, machine_id: UUID,
                   since: datetime | None = None) -> list[dict[str, Any]]:
    """Every label range of the machine ending after `since` (None: all), oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_MACHINE_LABELS, (machine_id, since, since)).fetchall()


# The same centre rule as HAS_WINDOWS, for one sensor.
SENSOR_HAS_WINDOWS = """
SELECT EXISTS (
    SELECT 1 FROM sensors s JOIN embeddings e ON e.sensor_id = s.id
    WHERE s.id = %(sensor_id)s
      AND e.t >= %(start)s - make_interval(secs => s.window_s / 2)
      AND e.t < %(end)s - make_interval(secs => s.window_s / 2))
"""


def sensor_has_windows(conn: psycopg.Connection, sensor_id: UUID, start: datetime,
                       end: datetime) -> bool:
    """Whether a stored window of the sensor has its centre in [start, end)."""
    row = conn.execute(SENSOR_HAS_WINDOWS, {"sensor_id": sensor_id, "start": start,
                                            "end": end}).fetchone()
    return bool(row and row[0])
