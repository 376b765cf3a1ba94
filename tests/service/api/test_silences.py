"""`/v1/machines/{id}/silences`: create, list (all or active), delete, validation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
from fastapi.testclient import TestClient

from tests.service.alerting.conftest import make_machine


def test_create_list_and_delete(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    url = f"/v1/machines/{machine_id}/silences"
    now = datetime.now(UTC)
    current = admin.post(url, json={"start": (now - timedelta(hours=1)).isoformat(),
                                    "end": (now + timedelta(hours=1)).isoformat(),
                                    "reason": "bearing swap"})
    assert current.status_code == 201, current.text
    later = admin.post(url, json={"start": (now + timedelta(days=1)).isoformat(),
                                  "end": (now + timedelta(days=2)).isoformat(),
                                  "reason": "shutdown"}).json()
    assert {s["id"] for s in admin.get(url).json()["items"]} == {current.json()["id"],
                                                                 later["id"]}
    active = admin.get(url, params={"active": True}).json()["items"]
    assert [s["reason"] for s in active] == ["bearing swap"]
    assert admin.delete(f"{url}/{later['id']}").status_code == 200
    assert admin.delete(f"{url}/{later['id']}").status_code == 404
    assert len(admin.get(url).json()["items"]) == 1


def test_invalid_silences_are_refused_and_nothing_is_stored(
        admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    url = f"/v1/machines/{machine_id}/silences"
    now = datetime.now(UTC)
    bad = [
        {"start": now.isoformat(), "end": now.isoformat(), "reason": "x"},
        {"start": now.isoformat(), "end": (now + timedelta(hours=1)).isoformat(), "reason": ""},
        {"start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00", "reason": "naive"},
        {"start": now.isoformat(), "reason": "no end"},
    ]
    for body in bad:
        response = admin.post(url, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert "end must be after start" in admin.post(url, json=bad[0]).json()["detail"]
    assert admin.get(url).json()["items"] == []
    missing = admin.post(f"/v1/machines/{uuid.uuid4()}/silences", json={
        "start": now.isoformat(), "end": (now + timedelta(hours=1)).isoformat(),
        "reason": "x"})
    assert missing.status_code == 404
