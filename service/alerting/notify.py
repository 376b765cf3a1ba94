"""Which alert changes notify anyone, and the outbox calls that do it.

A silenced or suppressed alert notifies nobody when it fires. `resolved` and
`acknowledged` go out only for alerts whose firing went out, so receivers always see both
ends of what they were told about and never a resolution of something they never saw."""

from __future__ import annotations

from typing import Any

import psycopg

from service.alerting import events
from service.alerting.outbox import enqueue_event
from service.queries import alerts as alert_queries
from service.settings import get_settings


def _send(conn: psycopg.Connection, event_type: str, row: dict[str, Any]) -> None:
    data = events.alert_object(row, get_settings().public_url)
    enqueue_event(conn, event_type, data, row["machine_id"])


def fired(conn: psycopg.Connection, row: dict[str, Any]) -> dict[str, Any]:
    """Announce a new alert unless it is silenced or suppressed; the alert row after."""
    if row["silenced"] or row["suppressed_reason"] is not None:
        return row
    return repeat(conn, row)


def repeat(conn: psycopg.Connection, row: dict[str, Any]) -> dict[str, Any]:
    """Send the firing event (again) and record that it went out."""
    row = alert_queries.mark_notified(conn, row["id"])
    _send(conn, events.firing_event(row["type"]), row)
    return row


def resolved(conn: psycopg.Connection, row: dict[str, Any]) -> None:
    if row["last_notified_at"] is not None:
        _send(conn, events.ALERT_RESOLVED, row)


def acknowledged(conn: psycopg.Connection, row: dict[str, Any]) -> None:
    if row["last_notified_at"] is not None:
        _send(conn, events.ALERT_ACKNOWLEDGED, row)
