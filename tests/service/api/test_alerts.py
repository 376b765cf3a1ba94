"""`/v1/machines/{id}/alert-rule` and `/v1/alerts`: defaults, validation as problem+json
with nothing stored, listing filters, detail, acknowledgement and feedback."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from uuid import UUID

import httpx
import psycopg
from fastapi.testclient import TestClient

from tests.service.alerting.conftest import feed, make_machine, now_s


def problem(response: httpx.Response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    detail = response.json()["detail"]
    for word in words:
        assert word in detail, detail


def test_rule_defaults_update_and_validation(admin: TestClient,
                                             conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    url = f"/v1/machines/{machine_id}/alert-rule"
    default = admin.get(url).json()
    assert default["is_default"] is True and (default["k"], default["n"]) == (3, 5)
    assert default["clear_windows"] == 10 and default["no_data_s"] == 300
    updated = admin.put(url, json={"k": 2, "n": 4, "repeat_interval_s": None})
    assert updated.status_code == 200, updated.text
    body = admin.get(url).json()
    assert body["is_default"] is False and (body["k"], body["n"]) == (2, 4)
    assert body["repeat_interval_s"] is None and body["clear_windows"] == 10
    problem(admin.put(url, json={"k": 6, "n": 5}), 422, "k (6) must not exceed n (5)")
    problem(admin.put(url, json={"n": 63}), 422, "n")
    problem(admin.put(url, json={"clear_ratio": 0}), 422, "clear_ratio")
    problem(admin.put(url, json={"kk": 1}), 422, "kk")
    assert (admin.get(url).json()["k"], admin.get(url).json()["n"]) == (2, 4)
    problem(admin.get(f"/v1/machines/{uuid.uuid4()}/alert-rule"), 404, "does not exist")
    problem(admin.put(f"/v1/machines/{uuid.uuid4()}/alert-rule", json={}), 404)


def test_read_keys_read_but_cannot_change(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    key = admin.post("/v1/api-keys", json={"name": "viewer", "role": "read"}).json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    assert admin.get(f"/v1/machines/{machine_id}/alert-rule", headers=headers).status_code == 200
    assert admin.get("/v1/alerts", headers=headers).status_code == 200
    problem(admin.put(f"/v1/machines/{machine_id}/alert-rule", json={}, headers=headers), 403)


def two_machines_with_alerts(conn: psycopg.Connection) -> tuple[UUID, datetime]:
    """Machine A: one resolved alert, then one firing (from `t` on); machine B: one."""
    machine_id, (sensor,) = make_machine(conn)
    other_id, (other_sensor,) = make_machine(conn)
    start = now_s() - timedelta(minutes=5)
    t = feed(conn, machine_id, sensor, start, [3.0] * 3 + [0.1] * 10, 1.0)
    feed(conn, machine_id, sensor, t, [3.0] * 3, 1.0)
    feed(conn, other_id, other_sensor, start, [3.0] * 3, 1.0)
    return machine_id, t


def test_list_filters_and_pagination(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, t = two_machines_with_alerts(conn)
    everything = admin.get("/v1/alerts").json()
    assert len(everything["items"]) == 3 and everything["next_offset"] is None
    mine = admin.get("/v1/alerts", params={"machine_id": str(machine_id)}).json()["items"]
    assert [a["state"] for a in mine] == ["firing", "resolved"]  # newest first
    firing = admin.get("/v1/alerts", params={"machine_id": str(machine_id),
                                             "state": "firing"}).json()["items"]
    assert [a["id"] for a in firing] == [mine[0]["id"]]
    page = admin.get("/v1/alerts", params={"limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_offset"] == 2
    window = {"start": (t - timedelta(seconds=1)).isoformat(),
              "end": (t + timedelta(hours=1)).isoformat()}
    in_range = admin.get("/v1/alerts", params={**window, "machine_id": str(machine_id)})
    assert [a["id"] for a in in_range.json()["items"]] == [mine[0]["id"]]
    problem(admin.get("/v1/alerts", params={"start": window["end"], "end": window["start"]}),
            422, "end must be after start")
    problem(admin.get("/v1/alerts", params={"state": "burning"}), 422, "state")


def test_detail_ack_and_feedback(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = two_machines_with_alerts(conn)
    mine = admin.get("/v1/alerts", params={"machine_id": str(machine_id)}).json()["items"]
    detail = admin.get(f"/v1/alerts/{mine[1]['id']}").json()
    assert detail["ends_at"] is not None and detail["peak_score"] == 3.0
    assert detail["threshold"] == 1.0 and detail["model_version"] == 1
    assert detail["links"]["self"] == f"/v1/alerts/{mine[1]['id']}"
    problem(admin.get(f"/v1/alerts/{uuid.uuid4()}"), 404, "does not exist")

    acked = admin.post(f"/v1/alerts/{mine[0]['id']}/ack").json()
    assert acked["acknowledged"] is True and acked["acknowledged_by"] == "admin-key"
    assert [a["id"] for a in admin.get("/v1/alerts", params={"acknowledged": True}).json()[
        "items"]] == [mine[0]["id"]]
    problem(admin.post(f"/v1/alerts/{uuid.uuid4()}/ack"), 404)

    url = f"/v1/alerts/{mine[1]['id']}/feedback"
    problem(admin.post(url, json={"verdict": "maybe"}), 422, "verdict")
    problem(admin.post(url, json={"verdict": "confirmed", "label": "x" * 101}), 422, "label")
    assert admin.get(f"/v1/alerts/{mine[1]['id']}").json()["verdict"] is None
    given = admin.post(url, json={"verdict": "confirmed", "label": "propeller",
                                  "note": "chipped blade"})
    assert given.status_code == 200, given.text
    assert (given.json()["verdict"], given.json()["feedback_label"]) == ("confirmed",
                                                                         "propeller")


def test_feedback_on_a_no_data_alert_is_a_conflict(admin: TestClient,
                                                   conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    with conn.transaction():
        row = conn.execute("INSERT INTO alerts (machine_id, type, starts_at) "
                           "VALUES (%s, 'no_data', now()) RETURNING id", (machine_id,)
                           ).fetchone()
    assert row is not None
    problem(admin.post(f"/v1/alerts/{row[0]}/feedback", json={"verdict": "false_positive"}),
            409, "anomaly alerts")
