"""Webhook endpoints, the message outbox, deliveries and attempts."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

COLUMNS = """id, url, events, machine_ids, description, enabled, disabled_reason, created_at,
updated_at"""
INSERT_WEBHOOK = f"""
INSERT INTO webhooks (url, events, machine_ids, description, secret)
VALUES (%s, %s, %s, %s, %s) RETURNING {COLUMNS}
"""
SELECT_WEBHOOK = f"SELECT {COLUMNS} FROM webhooks WHERE id = %s"
LIST_WEBHOOKS = f"SELECT {COLUMNS} FROM webhooks ORDER BY created_at, id LIMIT %s OFFSET %s"
# One static statement for every PATCH: each field changes only when its flag is set, so
# "set machine_ids to null (all machines)" and "leave machine_ids alone" stay distinct.
UPDATE_WEBHOOK = f"""
UPDATE webhooks SET
    url = CASE WHEN %(set_url)s THEN %(url)s ELSE url END,
    events = CASE WHEN %(set_events)s THEN %(events)s ELSE events END,
    machine_ids = CASE WHEN %(set_machine_ids)s THEN %(machine_ids)s::uuid[]
                       ELSE machine_ids END,
    description = CASE WHEN %(set_description)s THEN %(description)s ELSE description END,
    enabled = CASE WHEN %(set_enabled)s THEN %(enabled)s ELSE enabled END,
    disabled_reason = CASE WHEN %(set_enabled)s THEN
        CASE WHEN %(enabled)s THEN NULL ELSE 'disabled by an administrator' END
        ELSE disabled_reason END,
    updated_at = now()
WHERE id = %(id)s RETURNING {COLUMNS}
"""
DELETE_WEBHOOK = "DELETE FROM webhooks WHERE id = %s"
DISABLE_WEBHOOK = """
UPDATE webhooks SET enabled = false, disabled_reason = %s, updated_at = now() WHERE id = %s
"""
FAIL_PENDING = """
UPDATE webhook_deliveries SET state = 'failed', last_error = %s
WHERE webhook_id = %s AND state = 'pending'
"""
MISSING_MACHINES = """
SELECT wanted FROM unnest(%s::uuid[]) AS wanted
WHERE NOT EXISTS (SELECT 1 FROM machines m WHERE m.id = wanted)
"""
# FOR SHARE: an endpoint being disabled (410) waits until this transaction's deliveries
# are committed, so the disabling transaction's "fail the pending ones" sees them too and
# none is left pending for an endpoint that will never be sent to again.
MATCHING_ENDPOINTS = """
SELECT id FROM webhooks
WHERE enabled AND %(event)s = ANY (events)
  AND (machine_ids IS NULL OR %(machine_id)s::uuid = ANY (machine_ids))
ORDER BY id
FOR SHARE
"""
INSERT_MESSAGE = """
INSERT INTO webhook_messages (id, event_type, machine_id, body) VALUES (%s, %s, %s, %s)
"""
INSERT_DELIVERIES = """
INSERT INTO webhook_deliveries (webhook_id, message_id)
SELECT unnest(%s::uuid[]), %s RETURNING id
"""
NOTIFY = "SELECT pg_notify(%s, %s)"
# The claim: due rows of enabled endpoints, locked without waiting on other workers, and
# pushed a lease into the future in the same statement. Committed before the send.
CLAIM_DUE = """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
    WHERE d.state = 'pending' AND d.next_attempt_at <= now() AND w.enabled
    ORDER BY d.next_attempt_at LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED)
UPDATE webhook_deliveries d
SET next_attempt_at = now() + make_interval(secs => %(lease_s)s),
    attempts = d.attempts + 1,
    give_up_at = coalesce(d.give_up_at, now() + make_interval(secs => %(window_s)s))
FROM due, webhooks w, webhook_messages m
WHERE d.id = due.id AND w.id = d.webhook_id AND m.id = d.message_id
RETURNING d.id, d.attempts, d.give_up_at, w.id AS webhook_id, w.url, w.secret,
          m.id AS message_id, m.body
"""
INSERT_ATTEMPT = """
INSERT INTO webhook_attempts (delivery_id, status, error, duration_ms) VALUES (%s, %s, %s, %s)
"""
# Guarded by state: if a lease expired and two sends of one delivery overlap, the first
# "delivered" wins and a later outcome cannot reopen it.
FINISH_DELIVERY = """
UPDATE webhook_deliveries SET state = %(state)s, next_attempt_at = %(next_attempt_at)s,
    last_status = %(status)s, last_error = %(error)s,
    delivered_at = CASE WHEN %(state)s = 'delivered' THEN now() END
WHERE id = %(id)s AND state = 'pending'
"""
DELIVERY_COLUMNS = """d.id, d.webhook_id, d.message_id, m.event_type, d.state, d.attempts,
d.next_attempt_at, d.give_up_at, d.last_status, d.last_error, d.created_at, d.delivered_at"""
LIST_DELIVERIES = f"""
SELECT {DELIVERY_COLUMNS},
    coalesce((SELECT json_agg(json_build_object('attempted_at', a.attempted_at,
                 'status', a.status, 'error', a.error, 'duration_ms', a.duration_ms)
                 ORDER BY a.id DESC)
              FROM (SELECT * FROM webhook_attempts WHERE delivery_id = d.id
                    ORDER BY id DESC LIMIT 10) a), '[]'::json) AS recent_attempts
FROM webhook_deliveries d JOIN webhook_messages m ON m.id = d.message_id
WHERE d.webhook_id = %(webhook_id)s AND (%(state)s::text IS NULL OR d.state = %(state)s)
ORDER BY d.created_at DESC, d.id LIMIT %(limit)s OFFSET %(offset)s
"""
REDELIVER = f"""
UPDATE webhook_deliveries d SET state = 'pending', next_attempt_at = now(), give_up_at = NULL,
    delivered_at = NULL
FROM webhook_messages m
WHERE d.id = %s AND d.webhook_id = %s AND m.id = d.message_id
RETURNING {DELIVERY_COLUMNS}
"""


def _one(conn: psycopg.Connection, query: str, params: Any) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchone()


def insert(conn: psycopg.Connection, url: str, events: list[str],
           machine_ids: list[UUID] | None, description: str | None,
           secret: str) -> dict[str, Any]:
    row = _one(conn, INSERT_WEBHOOK, (url, events, machine_ids, description, secret))
    assert row is not None
    return row


def get(conn: psycopg.Connection, webhook_id: UUID) -> dict[str, Any] | None:
    return _one(conn, SELECT_WEBHOOK, (webhook_id,))


def list_webhooks(conn: psycopg.Connection, limit: int, offset: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_WEBHOOKS, (limit, offset)).fetchall()


def update(conn: psycopg.Connection, webhook_id: UUID,
           changes: dict[str, Any]) -> dict[str, Any] | None:
    fields = ("url", "events", "machine_ids", "description", "enabled")
    params: dict[str, Any] = {"id": webhook_id}
    for name in fields:
        params[f"set_{name}"] = name in changes
        params[name] = changes.get(name)
    return _one(conn, UPDATE_WEBHOOK, params)


def delete(conn: psycopg.Connection, webhook_id: UUID) -> bool:
    return conn.execute(DELETE_WEBHOOK, (webhook_id,)).rowcount > 0


def disable_endpoint(conn: psycopg.Connection, webhook_id: UUID, reason: str) -> None:
    conn.execute(DISABLE_WEBHOOK, (reason, webhook_id))


def fail_pending(conn: psycopg.Connection, webhook_id: UUID, reason: str) -> None:
    """Stop the endpoint's pending deliveries (it was disabled)."""
    conn.execute(FAIL_PENDING, (f"endpoint disabled: {reason}", webhook_id))


def missing_machines(conn: psycopg.Connection, machine_ids: list[UUID]) -> list[UUID]:
    return [row[0] for row in conn.execute(MISSING_MACHINES, (machine_ids,)).fetchall()]


def matching_endpoints(conn: psycopg.Connection, event_type: str,
                       machine_id: UUID | None) -> list[UUID]:
    params = {"event": event_type, "machine_id": machine_id}
    return [row[0] for row in conn.execute(MATCHING_ENDPOINTS, params).fetchall()]


def insert_message(conn: psycopg.Connection, message_id: str, event_type: str,
                   machine_id: UUID | None, body: str, webhook_ids: list[UUID]) -> list[UUID]:
    """Store the message and one pending delivery per endpoint; the delivery ids."""
    conn.execute(INSERT_MESSAGE, (message_id, event_type, machine_id, body))
    rows = conn.execute(INSERT_DELIVERIES, (webhook_ids, message_id)).fetchall()
    return [row[0] for row in rows]


def notify(conn: psycopg.Connection, channel: str, payload: str) -> None:
    conn.execute(NOTIFY, (channel, payload))


def claim_due(conn: psycopg.Connection, limit: int, lease_s: float,
              window_s: float) -> list[dict[str, Any]]:
    params = {"limit": limit, "lease_s": lease_s, "window_s": window_s}
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(CLAIM_DUE, params).fetchall()


def record_attempt(conn: psycopg.Connection, delivery_id: UUID, status: int | None,
                   error: str | None, duration_ms: float) -> None:
    conn.execute(INSERT_ATTEMPT, (delivery_id, status, error, duration_ms))


def finish(conn: psycopg.Connection, delivery_id: UUID, state: str,
           next_attempt_at: datetime, status: int | None, error: str | None) -> bool:
    params = {"id": delivery_id, "state": state, "next_attempt_at": next_attempt_at,
              "status": status, "error": error}
    return conn.execute(FINISH_DELIVERY, params).rowcount > 0


def list_deliveries(conn: psycopg.Connection, webhook_id: UUID, state: str | None,
                    limit: int, offset: int) -> list[dict[str, Any]]:
    params = {"webhook_id": webhook_id, "state": state, "limit": limit, "offset": offset}
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_DELIVERIES, params).fetchall()


def redeliver(conn: psycopg.Connection, webhook_id: UUID,
              delivery_id: UUID) -> dict[str, Any] | None:
    return _one(conn, REDELIVER, (delivery_id, webhook_id))


# The alert's own messages (alert.firing / .resolved / .acknowledged carry its id in
# data.id) with each endpoint's delivery of them.
ALERT_DELIVERIES = """
SELECT d.id, d.webhook_id, w.url, m.event_type, d.state, d.attempts, d.last_status,
       d.last_error, d.created_at, d.delivered_at
FROM webhook_messages m
JOIN webhook_deliveries d ON d.message_id = m.id
JOIN webhooks w ON w.id = d.webhook_id
WHERE m.machine_id = %s AND m.event_type LIKE 'alert.%%'
  AND m.body::jsonb -> 'data' ->> 'id' = %s
ORDER BY d.created_at DESC, d.id LIMIT %s
"""


def deliveries_for_alert(conn: psycopg.Connection, machine_id: UUID, alert_id: UUID,
                         limit: int) -> list[dict[str, Any]]:
    """Webhook deliveries of one alert's notifications, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(ALERT_DELIVERIES, (machine_id, str(alert_id), limit)).fetchall()
