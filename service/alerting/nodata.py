"""The periodic alert job (every 15 s in the scheduler): `no_data` alerts for machines
with an active model whose sensors went silent, their resolution when data is back, and
repeat notifications (`service.alerting.repeats`)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import psycopg
from psycopg_pool import ConnectionPool

from service.alerting import notify, repeats
from service.alerting.engine import suppression
from service.alerting.rules import DEFAULT_RULE
from service.queries import alerts as alert_queries
from service.settings import Settings

log = logging.getLogger("earshot.alerting")


def fire_silent(conn: psycopg.Connection) -> int:
    """Open a `no_data` alert for each newly silent machine; the number opened."""
    opened = 0
    for silent in alert_queries.silent_machines(conn, DEFAULT_RULE.no_data_s):
        # The alert fires now, so a silence covering now holds it back.
        silence_id, reason = suppression(conn, silent["machine_id"], datetime.now(UTC))
        row = alert_queries.insert(conn, {
            "machine_id": silent["machine_id"], "type": "no_data", "state": "firing",
            "starts_at": silent["silent_since"], "ends_at": None, "model_version": None,
            "threshold": None, "clear_level": None, "peak_score": None, "peak_at": None,
            "last_score": None, "last_window_at": None, "window_count": 0,
            "anomalous_count": 0, "sensor_ids": silent["sensor_ids"],
            "silenced": silence_id is not None, "silence_id": silence_id,
            "suppressed_reason": reason,
        })
        if row is not None:  # None: another scheduler opened it first
            notify.fired(conn, row)
            opened += 1
    return opened


def resolve_recovered(conn: psycopg.Connection) -> int:
    rows = alert_queries.resolve_recovered(conn, DEFAULT_RULE.no_data_s)
    for row in rows:
        notify.resolved(conn, row)
    return len(rows)


def check(settings: Settings, pool: ConnectionPool) -> None:
    """One pass; each step commits on its own so one failure does not undo the others.

    Safe in several scheduler processes at once without an advisory lock: a second open
    no_data alert is refused by the one-open-alert index, resolutions re-check the state
    under the row lock, and repeats are claimed SKIP LOCKED."""
    with pool.connection() as conn:
        for step in (fire_silent, resolve_recovered, repeats.send_due):
            try:
                with conn.transaction():
                    changed = step(conn)
            except psycopg.Error:
                log.exception("alert job step %s failed", step.__name__)
                continue
            if changed:
                log.info("alert job %s: %d alert(s)", step.__name__, changed)
