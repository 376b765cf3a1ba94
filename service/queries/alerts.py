"""Alert rows: the engine's writes, the API's reads, timeline spans and feedback ranges."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

COLUMNS = """id, machine_id, type, state, starts_at, ends_at, fired_at, resolved_at,
model_version, threshold, clear_level, peak_score, peak_at, last_score, last_window_at,
window_count, anomalous_count, sensor_ids, silenced, silence_id, suppressed_reason,
acknowledged_at, acknowledged_by, last_notified_at, notify_count, verdict, feedback_label,
feedback_note, feedback_at"""

INSERT_ALERT = f"""
INSERT INTO alerts (machine_id, type, state, starts_at, ends_at, resolved_at, model_version,
    threshold, clear_level, peak_score, peak_at, last_score, last_window_at, window_count,
    anomalous_count, sensor_ids, silenced, silence_id, suppressed_reason)
VALUES (%(machine_id)s, %(type)s, %(state)s, %(starts_at)s, %(ends_at)s,
    CASE WHEN %(state)s = 'resolved' THEN now() END, %(model_version)s, %(threshold)s,
    %(clear_level)s, %(peak_score)s, %(peak_at)s, %(last_score)s, %(last_window_at)s,
    %(window_count)s, %(anomalous_count)s, %(sensor_ids)s, %(silenced)s, %(silence_id)s,
    %(suppressed_reason)s)
ON CONFLICT (machine_id, type) WHERE state = 'firing' DO NOTHING
RETURNING {COLUMNS}
"""
UPDATE_OPEN = f"""
UPDATE alerts SET
    peak_score = %(peak_score)s, peak_at = %(peak_at)s, last_score = %(last_score)s,
    last_window_at = %(last_window_at)s, window_count = window_count + %(window_count)s,
    anomalous_count = anomalous_count + %(anomalous_count)s,
    sensor_ids = ARRAY(SELECT DISTINCT unnest(sensor_ids || %(sensor_ids)s::uuid[])),
    state = %(state)s, ends_at = %(ends_at)s,
    resolved_at = CASE WHEN %(state)s = 'resolved' THEN now() END, updated_at = now()
WHERE id = %(id)s AND state = 'firing'
RETURNING {COLUMNS}
"""
# Oldest anomalous window among the machine's last n scored windows up to the firing one:
# the alert's start. Runs only when an alert fires.
FIRST_ANOMALOUS = """
SELECT min(t) FILTER (WHERE anomalous) FROM (
    SELECT t, anomalous FROM scores WHERE machine_id = %s AND t <= %s
    ORDER BY t DESC LIMIT %s) AS last_n
"""
ACTIVE_SILENCE = """
SELECT id FROM silences WHERE machine_id = %s AND start_at <= %s AND end_at > %s
ORDER BY end_at DESC LIMIT 1
"""
LIFT_SUPPRESSION = f"""
UPDATE alerts SET suppressed_reason = NULL, updated_at = now()
WHERE id = %s RETURNING {COLUMNS}
"""
MARK_NOTIFIED = f"""
UPDATE alerts SET last_notified_at = now(), notify_count = notify_count + 1, updated_at = now()
WHERE id = %s RETURNING {COLUMNS}
"""
SELECT_ALERT = f"SELECT {COLUMNS} FROM alerts WHERE id = %s"
LIST_ALERTS = f"""
SELECT {COLUMNS} FROM alerts
WHERE (%(machine_id)s::uuid IS NULL OR machine_id = %(machine_id)s)
  AND (%(state)s::text IS NULL OR state = %(state)s)
  AND (%(type)s::text IS NULL OR type = %(type)s)
  AND (%(acknowledged)s::boolean IS NULL
       OR (acknowledged_at IS NOT NULL) = %(acknowledged)s)
  AND (%(end)s::timestamptz IS NULL OR starts_at < %(end)s)
  AND (%(start)s::timestamptz IS NULL OR coalesce(ends_at, 'infinity') >= %(start)s)
ORDER BY starts_at DESC, id LIMIT %(limit)s OFFSET %(offset)s
"""
ACK_ALERT = f"""
UPDATE alerts SET acknowledged_at = now(), acknowledged_by = %s, updated_at = now()
WHERE id = %s AND acknowledged_at IS NULL RETURNING {COLUMNS}
"""
SET_FEEDBACK = f"""
UPDATE alerts SET verdict = %s, feedback_label = %s, feedback_note = %s, feedback_at = now(),
                  updated_at = now()
WHERE id = %s RETURNING {COLUMNS}
"""
SPANS = """
SELECT id, type, state, starts_at, ends_at, peak_score, silenced, acknowledged_at IS NOT NULL
       AS acknowledged, verdict
FROM alerts
WHERE machine_id = %s AND starts_at < %s AND coalesce(ends_at, 'infinity') >= %s
ORDER BY starts_at
"""
# Half-open [start, end): a firing alert's range runs just past its newest window, what is
# known to belong to it so far.
FEEDBACK_RANGES = """
SELECT starts_at, coalesce(ends_at, last_window_at + interval '1 microsecond',
                           starts_at + interval '1 microsecond') AS end_at FROM alerts
WHERE machine_id = %s AND verdict = %s AND type = 'anomaly'
ORDER BY starts_at
"""
# Machines with an active detector whose sensors went quiet for longer than the rule allows
# (no rule row: the default; a row with no_data_s NULL: off) and no open no_data alert.
SILENT_MACHINES = """
SELECT s.machine_id, array_agg(s.id ORDER BY s.id) AS sensor_ids,
       min(coalesce(s.last_seen_at, s.created_at)) AS silent_since
FROM sensors s
LEFT JOIN alert_rules r ON r.machine_id = s.machine_id
WHERE coalesce(r.enabled, true)
  AND coalesce(s.last_seen_at, s.created_at) < now() - make_interval(
        secs => CASE WHEN r.machine_id IS NULL THEN %(default_s)s ELSE r.no_data_s END)
  AND EXISTS (SELECT 1 FROM models m WHERE m.machine_id = s.machine_id
              AND m.target = 'detector' AND m.active)
  AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.machine_id = s.machine_id
                  AND a.type = 'no_data' AND a.state = 'firing')
GROUP BY s.machine_id
"""
# Open no_data alerts whose machine has no silent sensor any more (or no longer qualifies).
RECOVERED = f"""
UPDATE alerts a SET state = 'resolved', ends_at = now(), resolved_at = now(),
                    updated_at = now()
WHERE a.type = 'no_data' AND a.state = 'firing' AND NOT EXISTS (
    SELECT 1 FROM sensors s LEFT JOIN alert_rules r ON r.machine_id = s.machine_id
    WHERE s.machine_id = a.machine_id AND coalesce(r.enabled, true)
      AND coalesce(s.last_seen_at, s.created_at) < now() - make_interval(
            secs => CASE WHEN r.machine_id IS NULL THEN %(default_s)s ELSE r.no_data_s END)
      AND EXISTS (SELECT 1 FROM models m WHERE m.machine_id = s.machine_id
                  AND m.target = 'detector' AND m.active))
RETURNING {COLUMNS}
"""
# Firing, unacknowledged alerts that are due a (first or repeated) notification: never
# notified (fired during a silence that has since ended) or notified longer ago than the
# rule's repeat interval; never while a silence is active or notifications are suppressed.
DUE_REPEATS = f"""
SELECT {', '.join('a.' + c.strip() for c in COLUMNS.split(','))}
FROM alerts a LEFT JOIN alert_rules r ON r.machine_id = a.machine_id
WHERE a.state = 'firing' AND a.acknowledged_at IS NULL AND a.suppressed_reason IS NULL
  AND (a.last_notified_at IS NULL OR a.last_notified_at <= now() - make_interval(
        secs => CASE WHEN r.machine_id IS NULL THEN %(default_s)s
                     ELSE r.repeat_interval_s END))
  AND NOT EXISTS (SELECT 1 FROM silences s WHERE s.machine_id = a.machine_id
                  AND s.start_at <= now() AND s.end_at > now())
ORDER BY a.fired_at LIMIT %(limit)s
FOR UPDATE OF a SKIP LOCKED
"""


def _one(conn: psycopg.Connection, query: str, params: Any) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchone()


def insert(conn: psycopg.Connection, values: dict[str, Any]) -> dict[str, Any] | None:
    """The new alert, or None when one of its type is already open for the machine."""
    return _one(conn, INSERT_ALERT, values)


def update_open(conn: psycopg.Connection, values: dict[str, Any]) -> dict[str, Any] | None:
    return _one(conn, UPDATE_OPEN, values)


def first_anomalous(conn: psycopg.Connection, machine_id: UUID, until: datetime,
                    n: int) -> datetime | None:
    row = conn.execute(FIRST_ANOMALOUS, (machine_id, until, n)).fetchone()
    return row[0] if row else None


def active_silence(conn: psycopg.Connection, machine_id: UUID, at: datetime) -> UUID | None:
    row = conn.execute(ACTIVE_SILENCE, (machine_id, at, at)).fetchone()
    return row[0] if row else None


def lift_suppression(conn: psycopg.Connection, alert_id: UUID) -> dict[str, Any]:
    """Clear the operating-state suppression of an alert (it may be notified now)."""
    row = _one(conn, LIFT_SUPPRESSION, (alert_id,))
    assert row is not None
    return row


def mark_notified(conn: psycopg.Connection, alert_id: UUID) -> dict[str, Any]:
    row = _one(conn, MARK_NOTIFIED, (alert_id,))
    assert row is not None
    return row


def get(conn: psycopg.Connection, alert_id: UUID) -> dict[str, Any] | None:
    return _one(conn, SELECT_ALERT, (alert_id,))


def list_alerts(conn: psycopg.Connection, filters: dict[str, Any], limit: int,
                offset: int) -> list[dict[str, Any]]:
    params = {"machine_id": None, "state": None, "type": None, "acknowledged": None,
              "start": None, "end": None, **filters, "limit": limit, "offset": offset}
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_ALERTS, params).fetchall()


def acknowledge(conn: psycopg.Connection, alert_id: UUID, by: str) -> dict[str, Any] | None:
    """The alert after acknowledging it; None when it was already acknowledged (or absent)."""
    return _one(conn, ACK_ALERT, (by, alert_id))


def set_feedback(conn: psycopg.Connection, alert_id: UUID, verdict: str, label: str | None,
                 note: str | None) -> dict[str, Any] | None:
    return _one(conn, SET_FEEDBACK, (verdict, label, note, alert_id))


def spans(conn: psycopg.Connection, machine_id: UUID, start: datetime,
          end: datetime) -> list[dict[str, Any]]:
    """Alert spans overlapping [start, end) for the timeline; `ends_at` None = still open."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SPANS, (machine_id, end, start)).fetchall()


def feedback_ranges(conn: psycopg.Connection, machine_id: UUID,
                    verdict: str) -> list[tuple[datetime, datetime]]:
    """[start, end) of the machine's anomaly alerts with this verdict: `false_positive`
    ranges are extra normal-operation data for training, `confirmed` ranges are kept out."""
    rows = conn.execute(FEEDBACK_RANGES, (machine_id, verdict)).fetchall()
    return [(row[0], row[1]) for row in rows]


def silent_machines(conn: psycopg.Connection, default_s: float | None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SILENT_MACHINES, {"default_s": default_s}).fetchall()


def resolve_recovered(conn: psycopg.Connection,
                      default_s: float | None) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(RECOVERED, {"default_s": default_s}).fetchall()


def due_repeats(conn: psycopg.Connection, default_s: float | None,
                limit: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(DUE_REPEATS, {"default_s": default_s, "limit": limit}).fetchall()
