"""Alert rules and the per-machine evaluation state the engine keeps between batches."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

SELECT_RULE = """
SELECT machine_id, enabled, k, n, clear_ratio, clear_windows, repeat_interval_s, no_data_s,
       updated_at
FROM alert_rules WHERE machine_id = %s
"""
UPSERT_RULE = """
INSERT INTO alert_rules (machine_id, enabled, k, n, clear_ratio, clear_windows,
                         repeat_interval_s, no_data_s)
VALUES (%(machine_id)s, %(enabled)s, %(k)s, %(n)s, %(clear_ratio)s, %(clear_windows)s,
        %(repeat_interval_s)s, %(no_data_s)s)
ON CONFLICT (machine_id) DO UPDATE SET
    enabled = EXCLUDED.enabled, k = EXCLUDED.k, n = EXCLUDED.n,
    clear_ratio = EXCLUDED.clear_ratio, clear_windows = EXCLUDED.clear_windows,
    repeat_interval_s = EXCLUDED.repeat_interval_s, no_data_s = EXCLUDED.no_data_s,
    updated_at = now()
RETURNING machine_id, enabled, k, n, clear_ratio, clear_windows, repeat_interval_s,
          no_data_s, updated_at
"""
# The state row is locked for the whole scoring transaction: two scorers handling two
# sensors of one machine serialise here instead of losing each other's window flags.
LOCK_STATE = """
SELECT s.recent, s.consecutive_clear, s.clear_since, s.marks,
       r.enabled, r.k, r.n, r.clear_ratio, r.clear_windows, r.repeat_interval_s, r.no_data_s,
       a.id AS alert_id, a.peak_score, a.peak_at
FROM alert_state s
LEFT JOIN alert_rules r ON r.machine_id = s.machine_id
LEFT JOIN alerts a ON a.machine_id = s.machine_id AND a.type = 'anomaly' AND a.state = 'firing'
WHERE s.machine_id = %s
FOR UPDATE OF s
"""
INSERT_STATE = """
INSERT INTO alert_state (machine_id) SELECT id FROM machines WHERE id = %s
ON CONFLICT (machine_id) DO NOTHING
"""
UPDATE_STATE = """
UPDATE alert_state SET recent = %s, consecutive_clear = %s, clear_since = %s, marks = %s,
                       updated_at = now()
WHERE machine_id = %s
"""



def get_rule(conn: psycopg.Connection, machine_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_RULE, (machine_id,)).fetchone()


def upsert_rule(conn: psycopg.Connection, machine_id: UUID,
                rule: dict[str, Any]) -> dict[str, Any]:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(UPSERT_RULE, {**rule, "machine_id": machine_id}).fetchone()
    assert row is not None
    return row


def lock_state(conn: psycopg.Connection, machine_id: UUID) -> dict[str, Any] | None:
    """The machine's state, rule and open anomaly alert, with the state row locked; None
    when the machine does not exist."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(LOCK_STATE, (machine_id,)).fetchone()
        if row is None:
            cur.execute(INSERT_STATE, (machine_id,))
            row = cur.execute(LOCK_STATE, (machine_id,)).fetchone()
    return row


def save_state(conn: psycopg.Connection, machine_id: UUID, recent: int, consecutive_clear: int,
               clear_since: datetime | None, marks: dict[str, int]) -> None:
    conn.execute(UPDATE_STATE, (recent, consecutive_clear, clear_since, Jsonb(marks),
                                machine_id))
