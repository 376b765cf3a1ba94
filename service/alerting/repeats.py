"""Repeat notifications for firing, unacknowledged alerts (run by `nodata.check`)."""

from __future__ import annotations

import psycopg

from service.alerting import notify
from service.alerting.rules import DEFAULT_RULE
from service.queries import alerts as alert_queries

BATCH = 500


def send_due(conn: psycopg.Connection) -> int:
    """Re-announce every alert due a repeat (or a first notification held back by a silence
    that has ended); the number sent. Rows are claimed SKIP LOCKED, so two schedulers never
    send one repeat twice."""
    rows = alert_queries.due_repeats(conn, DEFAULT_RULE.repeat_interval_s, BATCH)
    for row in rows:
        notify.repeat(conn, row)
    return len(rows)
