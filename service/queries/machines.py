"""Machines, and the bulk deletes their removal needs (hypertables carry no foreign keys)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

MACHINE_COLUMNS = "id, name, kind, location, labels, created_at, updated_at"
INSERT_MACHINE = f"""
INSERT INTO machines (name, kind, location, labels) VALUES (%s, %s, %s, %s)
ON CONFLICT (name) DO NOTHING
RETURNING {MACHINE_COLUMNS}
"""
SELECT_MACHINE = f"SELECT {MACHINE_COLUMNS} FROM machines WHERE id = %s"
# `@>` and `?&` with an empty filter match every row, so one statement serves all filters.
LIST_MACHINES = f"""
SELECT {MACHINE_COLUMNS} FROM machines
WHERE (%(kind)s::text IS NULL OR kind = %(kind)s)
  AND labels @> %(labels)s AND labels ?& %(keys)s::text[]
ORDER BY name, id LIMIT %(limit)s OFFSET %(offset)s
"""
UPDATE_MACHINE = f"""
UPDATE machines SET
    name = CASE WHEN %(set_name)s THEN %(name)s ELSE name END,
    kind = CASE WHEN %(set_kind)s THEN %(kind)s ELSE kind END,
    location = CASE WHEN %(set_location)s THEN %(location)s ELSE location END,
    labels = CASE WHEN %(set_labels)s THEN %(labels)s::jsonb ELSE labels END,
    updated_at = now()
WHERE id = %(id)s
RETURNING {MACHINE_COLUMNS}
"""
LOCK_MACHINE = "SELECT id FROM machines WHERE id = %s FOR UPDATE"
LOCK_MACHINE_SENSORS = "SELECT id FROM sensors WHERE machine_id = %s ORDER BY id FOR UPDATE"
COUNT_MACHINE_RECORDS = """
SELECT (SELECT count(*) FROM models WHERE machine_id = %(id)s) AS models,
       (SELECT count(*) FROM baselines WHERE machine_id = %(id)s) AS baselines,
       (SELECT count(*) FROM labels WHERE machine_id = %(id)s) AS labels
"""
# Scores and predictions by machine too: rows of sensors deleted earlier are already gone,
# but a machine id is the complete key for its rollups.
DELETE_MACHINE_DATA = (
    "DELETE FROM scores WHERE machine_id = %s",
    "DELETE FROM predictions WHERE machine_id = %s",
    "DELETE FROM score_rollups WHERE machine_id = %s",
    "DELETE FROM rollup_dirty WHERE machine_id = %s",
)
# Sensors, models, jobs, configs, baselines and labels follow by ON DELETE CASCADE.
DELETE_MACHINE = "DELETE FROM machines WHERE id = %s"
UPDATABLE = ("name", "kind", "location", "labels")

MACHINE_EXISTS = "SELECT 1 FROM machines WHERE id = %s"

def insert(conn: psycopg.Connection, name: str, kind: str, location: str | None,
           labels: Mapping[str, str]) -> dict[str, Any] | None:
    """The new machine, or None when the name is taken."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(INSERT_MACHINE, (name, kind, location, Jsonb(dict(labels)))
                           ).fetchone()


def exists(conn: psycopg.Connection, machine_id: UUID) -> bool:
    """The one existence check every machine-scoped route makes before its work."""
    return conn.execute(MACHINE_EXISTS, (machine_id,)).fetchone() is not None


def get(conn: psycopg.Connection, machine_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_MACHINE, (machine_id,)).fetchone()


def list_machines(conn: psycopg.Connection, limit: int, offset: int, *, kind: str | None = None,
                  labels: Mapping[str, str] | None = None,
                  label_keys: list[str] | None = None) -> list[dict[str, Any]]:
    """Machines by name; `labels` must all match, `label_keys` must all be present."""
    params = {"kind": kind, "labels": Jsonb(dict(labels or {})), "keys": label_keys or [],
              "limit": limit, "offset": offset}
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_MACHINES, params).fetchall()


def update(conn: psycopg.Connection, machine_id: UUID,
           changes: Mapping[str, Any]) -> dict[str, Any] | None:
    """Set the fields in `changes` (keys from UPDATABLE); None when there is no such machine.
    A taken name raises psycopg.errors.UniqueViolation."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    params: dict[str, Any] = {"id": machine_id}
    for field in UPDATABLE:
        params[f"set_{field}"] = field in changes
        params[field] = changes.get(field)
    if params["labels"] is not None:
        params["labels"] = Jsonb(params["labels"])
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(UPDATE_MACHINE, params).fetchone()


def lock_for_delete(conn: psycopg.Connection, machine_id: UUID) -> list[UUID] | None:
    """Lock the machine and its sensors (so no ingest or new sensor can slip in before the
    delete commits); the sensor ids, or None when there is no such machine."""
    if conn.execute(LOCK_MACHINE, (machine_id,)).fetchone() is None:
        return None
    return [row[0] for row in conn.execute(LOCK_MACHINE_SENSORS, (machine_id,)).fetchall()]


def count_records(conn: psycopg.Connection, machine_id: UUID) -> dict[str, int]:
    """Models, baselines and labels of the machine."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(COUNT_MACHINE_RECORDS, {"id": machine_id}).fetchone()
    assert row is not None
    return {key: int(value) for key, value in row.items()}


def delete(conn: psycopg.Connection, machine_id: UUID) -> None:
    """Delete the machine with everything it owns. Its sensors' windows must be deleted
    first (`sensors.delete_data`): the embeddings hypertable has no foreign key."""
    for statement in DELETE_MACHINE_DATA:
        conn.execute(statement, (machine_id,))
    conn.execute(DELETE_MACHINE, (machine_id,))
