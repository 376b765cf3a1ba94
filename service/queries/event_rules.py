"""Per-machine event rules (`event_rules`) and announced events (`detected_events`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

RULE_COLUMNS = """machine_id, notify_labels, default_params, class_params, state_label,
state_max_age_s, updated_at"""
SELECT_RULE = f"SELECT {RULE_COLUMNS} FROM event_rules WHERE machine_id = %s"
UPSERT_RULE = f"""
INSERT INTO event_rules (machine_id, notify_labels, default_params, class_params,
                         state_label, state_max_age_s, updated_at)
VALUES (%(machine_id)s, %(notify_labels)s, %(default_params)s, %(class_params)s,
        %(state_label)s, %(state_max_age_s)s, now())
ON CONFLICT (machine_id) DO UPDATE SET
    notify_labels = EXCLUDED.notify_labels, default_params = EXCLUDED.default_params,
    class_params = EXCLUDED.class_params, state_label = EXCLUDED.state_label,
    state_max_age_s = EXCLUDED.state_max_age_s, updated_at = now()
RETURNING {RULE_COLUMNS}
"""
# Serialises event announcements per machine: two scorers of one machine's sensors must
# not both find "not announced yet" for the same event.
LOCK_EVENTS = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
ANNOUNCED_OVERLAPPING = """
SELECT EXISTS (SELECT 1 FROM detected_events
               WHERE machine_id = %s AND sensor_id = %s AND label = %s
                 AND end_at >= %s AND start_at <= %s)
"""
INSERT_DETECTED = """
INSERT INTO detected_events (machine_id, sensor_id, label, start_at, end_at, confidence,
                             model_version, message_id)
VALUES (%(machine_id)s, %(sensor_id)s, %(label)s, %(start)s, %(end)s, %(confidence)s,
        %(version)s, %(message_id)s)
RETURNING id
"""
LIST_DETECTED = """
SELECT id, machine_id, sensor_id, label, start_at, end_at, confidence, model_version,
       message_id, detected_at
FROM detected_events WHERE machine_id = %s ORDER BY start_at, id LIMIT %s
"""


def get_rule(conn: psycopg.Connection, machine_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_RULE, (machine_id,)).fetchone()


def upsert_rule(conn: psycopg.Connection, machine_id: UUID, *, notify_labels: list[str],
                default_params: dict[str, Any], class_params: dict[str, Any],
                state_label: str | None, state_max_age_s: float) -> dict[str, Any]:
    values = {"machine_id": machine_id, "notify_labels": notify_labels,
              "default_params": Jsonb(default_params), "class_params": Jsonb(class_params),
              "state_label": state_label, "state_max_age_s": state_max_age_s}
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(UPSERT_RULE, values).fetchone()
    assert row is not None
    return row


def lock_events(conn: psycopg.Connection, machine_id: UUID) -> None:
    conn.execute(LOCK_EVENTS, (f"events:{machine_id}",))


def announced(conn: psycopg.Connection, machine_id: UUID, sensor_id: UUID, label: str,
              start: datetime, end: datetime) -> bool:
    """Whether an announced event of this sensor and class overlaps [start, end]."""
    row = conn.execute(ANNOUNCED_OVERLAPPING, (machine_id, sensor_id, label, start,
                                               end)).fetchone()
    return bool(row and row[0])


def insert_detected(conn: psycopg.Connection, values: dict[str, Any]) -> UUID:
    row = conn.execute(INSERT_DETECTED, values).fetchone()
    assert row is not None
    return UUID(str(row[0]))


def list_detected(conn: psycopg.Connection, machine_id: UUID,
                  limit: int = 1000) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_DETECTED, (machine_id, limit)).fetchall()
