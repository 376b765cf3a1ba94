"""`POST|GET /v1/machines/{id}/baselines` and `DELETE …/baselines/{baseline_id}`."""

from __future__ import annotations

import uuid

import psycopg
from fastapi.testclient import TestClient

from tests.service.api.test_detectors import assert_problem
from tests.service.training.helpers import make_machine


def url(machine_id: object) -> str:
    return f"/v1/machines/{machine_id}/baselines"


def count(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM baselines").fetchone()
    assert row is not None
    return int(row[0])


def test_create_list_delete(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    first = admin.post(url(machine_id), json={"start": "2026-11-20T08:00:00Z",
                                              "end": "2026-11-20T12:00:00+01:00",
                                              "note": "after bearing replacement"})
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["machine_id"] == str(machine_id) and body["source"] == "user"
    assert body["note"] == "after bearing replacement"
    assert body["start"].startswith("2026-11-20T08:00:00")
    assert body["end"].startswith("2026-11-20T11:00:00")  # stored as the same instant
    second = admin.post(url(machine_id), json={"start": "2026-11-01T00:00:00Z",
                                               "end": "2026-11-02T00:00:00Z"}).json()

    listed = admin.get(url(machine_id)).json()
    assert [b["id"] for b in listed["items"]] == [second["id"], body["id"]]  # by start
    assert listed["next_offset"] is None
    page = admin.get(url(machine_id), params={"limit": 1}).json()
    assert len(page["items"]) == 1 and page["next_offset"] == 1

    deleted = admin.delete(f"{url(machine_id)}/{body['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert [b["id"] for b in admin.get(url(machine_id)).json()["items"]] == [second["id"]]
    assert_problem(admin.delete(f"{url(machine_id)}/{body['id']}"), 404)


INVALID: list[dict[str, object]] = [
    {"start": "2026-11-20T12:00:00Z", "end": "2026-11-20T08:00:00Z"},
    {"start": "2026-11-20T08:00:00Z", "end": "2026-11-20T08:00:00Z"},
    {"start": "2026-11-20T08:00:00", "end": "2026-11-20T09:00:00Z"},
    {"start": "yesterday", "end": "2026-11-20T09:00:00Z"},
    {"start": "2026-11-20T08:00:00Z"},
    {"start": "2026-11-20T08:00:00Z", "end": "2026-11-20T09:00:00Z", "note": "x" * 2001},
    {"start": "2026-11-20T08:00:00Z", "end": "2026-11-20T09:00:00Z", "label": "ok"},
    {"start": "2026-11-20T08:00:00Z", "end": "2026-11-20T09:00:00Z", "note": "a\u0000b"},
]


def test_invalid_ranges_are_rejected(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    for body in INVALID:
        problem = assert_problem(admin.post(url(machine_id), json=body), 422)
        assert problem["errors"], body
    assert count(conn) == 0


def test_end_before_start_says_so(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    problem = assert_problem(admin.post(url(machine_id), json={
        "start": "2026-11-20T12:00:00Z", "end": "2026-11-20T08:00:00Z"}), 422)
    assert "must be after start" in problem["detail"]


def test_unknown_machine_and_foreign_baseline(admin: TestClient,
                                              conn: psycopg.Connection) -> None:
    body = {"start": "2026-11-20T08:00:00Z", "end": "2026-11-20T09:00:00Z"}
    assert_problem(admin.post(url(uuid.uuid4()), json=body), 404)
    assert_problem(admin.get(url(uuid.uuid4())), 404)
    machine_a, _ = make_machine(conn)
    machine_b, _ = make_machine(conn)
    baseline = admin.post(url(machine_a), json=body).json()
    assert_problem(admin.delete(f"{url(machine_b)}/{baseline['id']}"), 404)
    assert count(conn) == 1
