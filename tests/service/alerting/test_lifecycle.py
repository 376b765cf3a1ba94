"""Alert lifecycle with real deliveries: fire once and resolve, silences, acknowledgement
stopping repeats, and no_data alerts from the periodic job."""

from __future__ import annotations

import time
from datetime import timedelta
from uuid import UUID

import numpy as np
import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from ingest.store import insert_windows
from service.alerting import nodata
from service.alerting.rules import Rule
from service.queries import alert_rules
from service.settings import Settings
from tests.service.alerting.conftest import (
    WorkerThread,
    add_webhook,
    feed,
    make_machine,
    now_s,
    wait_for,
)
from tests.service.alerting.receiver import Receiver


def set_rule(conn: psycopg.Connection, machine_id: UUID, **changes: object) -> None:
    rule = {**Rule(k=2, n=3, clear_windows=3).as_dict(), **changes}
    with conn.transaction():
        alert_rules.upsert_rule(conn, machine_id, rule)


def messages(conn: psycopg.Connection) -> list[str]:
    found = [row[0] for row in conn.execute(
        "SELECT event_type FROM webhook_messages ORDER BY created_at, id")]
    conn.commit()
    return found


def activate_model(conn: psycopg.Connection, machine_id: UUID) -> None:
    with conn.transaction():
        conn.execute(
            "INSERT INTO models (machine_id, target, version, algorithm, params, "
            "embedding_kind, dim, n_windows, fit_seconds, artifact, artifact_sha256, active) "
            "VALUES (%s, 'detector', 1, 'mahalanobis', '{}', 'logmel-v1', 128, 100, 0.1, "
            "'\\x00', 'x', true)", (machine_id,))


def test_fires_once_and_resolves_with_signed_deliveries(
        conn: psycopg.Connection, receiver: Receiver, worker: WorkerThread) -> None:
    machine_id, (sensor,) = make_machine(conn)
    _, receiver.secret = add_webhook(conn, receiver.url)
    set_rule(conn, machine_id)
    start = now_s()
    t = feed(conn, machine_id, sensor, start, [0.1, 3.0, 4.0, 5.0, 3.0, 2.0], 1.0)
    t = feed(conn, machine_id, sensor, t, [0.1, 0.1, 0.1, 0.1], 1.0)
    wait_for(lambda: receiver.of_type("alert.resolved"), 10, "alert.resolved")
    # Webhooks promise at-least-once, not order: concurrent senders may deliver the
    # resolution first, so match messages by type (receivers order by the payload times).
    got = sorted(receiver.snapshot(), key=lambda r: r.payload["type"] != "alert.firing")
    assert [r.payload["type"] for r in got] == ["alert.firing", "alert.resolved"]
    assert all(r.verified for r in got)
    firing = got[0].payload["data"]
    assert firing["state"] == "firing" and firing["machine_id"] == str(machine_id)
    assert firing["peak_score"] == 5.0 and firing["links"]["timeline"].startswith(
        f"/v1/machines/{machine_id}/timeline?start=")
    resolved = got[1].payload["data"]
    assert resolved["id"] == firing["id"] and resolved["ends_at"] is not None
    # Counted from the firing window (4.0) to the third clear one; it started at the first
    # anomalous window of the k-of-n group (3.0, one second after the first window).
    assert resolved["window_count"] == 7 and resolved["anomalous_count"] == 4
    assert resolved["starts_at"] == (start + timedelta(seconds=1)).isoformat().replace(
        "+00:00", "Z")


def test_silence_keeps_the_record_but_sends_nothing(
        conn: psycopg.Connection, admin: TestClient, settings: Settings,
        pool: ConnectionPool) -> None:
    machine_id, (sensor,) = make_machine(conn)
    add_webhook(conn, "http://127.0.0.1:9/unused")
    set_rule(conn, machine_id, repeat_interval_s=1.0)
    start = now_s()
    created = admin.post(f"/v1/machines/{machine_id}/silences", json={
        "start": (start - timedelta(minutes=1)).isoformat(),
        "end": (start + timedelta(minutes=10)).isoformat(), "reason": "bearing swap"})
    assert created.status_code == 201, created.text
    t = feed(conn, machine_id, sensor, start, [3.0, 3.0, 3.0], 1.0)
    time.sleep(1.1)
    nodata.check(settings, pool)  # repeats are due, but the silence holds them
    alert = admin.get("/v1/alerts", params={"machine_id": str(machine_id)}).json()["items"][0]
    assert alert["state"] == "firing" and alert["silenced"] is True
    assert alert["silence_id"] == created.json()["id"] and alert["notify_count"] == 0
    feed(conn, machine_id, sensor, t, [0.1] * 3, 1.0)
    assert admin.get(f"/v1/alerts/{alert['id']}").json()["state"] == "resolved"
    assert messages(conn) == []
    # Still firing when the maintenance ends: the held-back notification goes out then.
    t = feed(conn, machine_id, sensor, t + timedelta(seconds=3), [3.0, 3.0], 1.0)
    assert admin.delete(f"/v1/machines/{machine_id}/silences/{created.json()['id']}"
                        ).status_code == 200
    nodata.check(settings, pool)
    assert messages(conn) == ["alert.firing"]


def test_acknowledging_stops_repeats(
        conn: psycopg.Connection, admin: TestClient, receiver: Receiver,
        worker: WorkerThread, settings: Settings, pool: ConnectionPool) -> None:
    machine_id, (sensor,) = make_machine(conn)
    _, receiver.secret = add_webhook(conn, receiver.url)
    set_rule(conn, machine_id, repeat_interval_s=1.0)
    feed(conn, machine_id, sensor, now_s(), [3.0, 3.0], 1.0)
    wait_for(lambda: receiver.of_type("alert.firing"), 10, "first notification")
    time.sleep(1.1)
    nodata.check(settings, pool)
    wait_for(lambda: len(receiver.of_type("alert.firing")) == 2, 10, "the repeat")
    alert_id = receiver.of_type("alert.firing")[0].payload["data"]["id"]
    acked = admin.post(f"/v1/alerts/{alert_id}/ack")
    assert acked.status_code == 200 and acked.json()["acknowledged"] is True
    assert admin.post(f"/v1/alerts/{alert_id}/ack").json()["acknowledged_at"] == \
        acked.json()["acknowledged_at"]  # idempotent: no second event either
    wait_for(lambda: receiver.of_type("alert.acknowledged"), 10, "alert.acknowledged")
    time.sleep(1.1)
    nodata.check(settings, pool)
    time.sleep(0.5)
    assert len(receiver.of_type("alert.firing")) == 2
    assert len(receiver.of_type("alert.acknowledged")) == 1
    assert [r.payload["data"]["notify_count"] for r in receiver.of_type("alert.firing")] == \
        [1, 2]


def test_no_data_fires_for_a_silent_sensor_and_resolves_when_data_returns(
        conn: psycopg.Connection, receiver: Receiver, worker: WorkerThread,
        settings: Settings, pool: ConnectionPool) -> None:
    machine_id, (sensor,) = make_machine(conn)
    quiet_id, _ = make_machine(conn)  # no active model: never a no_data alert
    _, receiver.secret = add_webhook(conn, receiver.url)
    activate_model(conn, machine_id)
    with conn.transaction():
        conn.execute("UPDATE sensors SET last_seen_at = now() - interval '6 minutes', "
                     "created_at = now() - interval '1 hour'")
    nodata.check(settings, pool)
    nodata.check(settings, pool)  # a second pass opens nothing more
    wait_for(lambda: receiver.of_type("sensor.no_data"), 10, "sensor.no_data")
    (event,) = receiver.of_type("sensor.no_data")
    data = event.payload["data"]
    assert data["type"] == "no_data" and data["sensor_ids"] == [str(sensor)]
    assert data["machine_id"] == str(machine_id)
    # Real ingest touches the sensor: the next pass resolves the alert.
    with conn.transaction():
        stamp = int(time.time() * 1e6)
        insert_windows(conn, sensor, np.array([stamp], dtype=np.int64),
                       np.zeros((1, 128), dtype=np.float32))
    nodata.check(settings, pool)
    wait_for(lambda: receiver.of_type("alert.resolved"), 10, "no_data resolved")
    assert receiver.of_type("alert.resolved")[0].payload["data"]["id"] == data["id"]
    assert conn.execute("SELECT count(*) FROM alerts WHERE machine_id = %s",
                        (quiet_id,)).fetchone() == (0,)
