"""The outbox: who gets a message (event type, machine filter, enabled), what is stored,
and that it rolls back with the transaction that caused it."""

from __future__ import annotations

import json

import psycopg
import pytest

from service.alerting import hooks, outbox
from tests.service.alerting.conftest import add_webhook, make_machine


def stored(conn: psycopg.Connection) -> list[tuple[str, str]]:
    rows = conn.execute("SELECT m.event_type, d.webhook_id::text FROM webhook_deliveries d "
                        "JOIN webhook_messages m ON m.id = d.message_id ORDER BY 2").fetchall()
    conn.commit()
    return rows


def test_subscriptions_filter_by_event_machine_and_enabled(conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    other_id, _ = make_machine(conn)
    everything, _ = add_webhook(conn, "http://127.0.0.1:9/a", ["model.trained"])
    only_mine, _ = add_webhook(conn, "http://127.0.0.1:9/b", ["model.trained"], [machine_id])
    add_webhook(conn, "http://127.0.0.1:9/c", ["alert.firing"])  # other event
    paused, _ = add_webhook(conn, "http://127.0.0.1:9/d", ["model.trained"])
    with conn.transaction():
        conn.execute("UPDATE webhooks SET enabled = false WHERE id = %s", (paused,))
        hooks.emit_event(conn, "model.trained", {"version": 3, "links": {"job": "/v1/jobs/x"}},
                         machine_id)
        hooks.emit_event(conn, "model.trained", {"version": 1}, other_id)
    assert sorted(stored(conn)) == sorted([("model.trained", str(everything)),
                                           ("model.trained", str(only_mine)),
                                           ("model.trained", str(everything))])
    body = json.loads(conn.execute("SELECT body FROM webhook_messages WHERE machine_id = %s",
                                   (machine_id,)).fetchone()[0])  # type: ignore[index]
    assert body["type"] == "model.trained" and body["data"]["version"] == 3
    assert body["data"]["links"] == {"job": "/v1/jobs/x", "machine": f"/v1/machines/{machine_id}",
                                     "models": f"/v1/machines/{machine_id}/models"}


def test_nothing_is_stored_without_subscribers_or_after_rollback(
        conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    with conn.transaction():
        assert outbox.enqueue_event(conn, "model.failed", {}, machine_id) is None
    add_webhook(conn, "http://127.0.0.1:9/a", ["model.failed"])
    with pytest.raises(RuntimeError), conn.transaction():
        assert outbox.enqueue_event(conn, "model.failed", {}, machine_id) is not None
        raise RuntimeError("the training transaction fails after emitting")
    assert stored(conn) == []
    with pytest.raises(outbox.UnknownEventError, match=r"known: alert\.firing"):
        outbox.enqueue_event(conn, "model.exploded", {}, machine_id)
