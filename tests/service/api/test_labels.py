"""`/v1/machines/{id}/labels`: labelled ranges over real uploaded audio; contradicting
overlaps (409 naming the label in the way), ranges without data (422), bad names and
ranges (422), unknown machines (404), all as problem+json with nothing stored."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from tests.service.classification.helpers import (
    count,
    esc10_clips,
    make_sensor,
    problem,
    upload,
    whole_seconds_ago,
)

LABELS = "SELECT count(*) FROM labels"


def test_labels_lifecycle_and_rules(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, sensor_id = make_sensor(admin)
    t0 = whole_seconds_ago(600)
    for i, path in enumerate(esc10_clips("rain")[:2]):
        upload(admin, sensor_id, path.read_bytes(), t0 + timedelta(seconds=5 * i), "audio/ogg")
    url = f"/v1/machines/{machine_id}/labels"

    def post(lo: float, hi: float, label: str) -> Any:
        return admin.post(url, json={"start": (t0 + timedelta(seconds=lo)).isoformat(),
                                     "end": (t0 + timedelta(seconds=hi)).isoformat(),
                                     "label": label})

    first = post(0, 5, "running")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["label"] == "running" and body["machine_id"] == machine_id
    assert post(2, 5, "running").status_code == 201  # same label: overlap is fine
    assert post(5, 10, "off").status_code == 201  # touching is not overlapping
    conflict = problem(post(3, 6, "idle"), 409, body["id"], "'running'")
    assert {c["label"] for c in conflict["conflicts"]} == {"running", "off"}
    problem(post(500, 510, "running"), 422, "no stored windows")
    assert count(conn, LABELS) == 3

    listed = admin.get(url).json()
    assert [i["label"] for i in listed["items"]] == ["running", "running", "off"]
    assert [i["label"] for i in admin.get(url, params={"label": "off"}).json()["items"]] == \
        ["off"]
    window = {"start": (t0 + timedelta(seconds=6)).isoformat(),
              "end": (t0 + timedelta(seconds=7)).isoformat()}
    assert [i["label"] for i in admin.get(url, params=window).json()["items"]] == ["off"]
    assert admin.delete(f"{url}/{body['id']}").status_code == 204
    problem(admin.delete(f"{url}/{body['id']}"), 404, "does not exist")
    assert count(conn, LABELS) == 2


def test_bad_labels_are_refused_with_nothing_stored(admin: TestClient,
                                                    conn: psycopg.Connection) -> None:
    machine_id, sensor_id = make_sensor(admin)
    t0 = whole_seconds_ago(600)
    upload(admin, sensor_id, esc10_clips("rain")[0].read_bytes(), t0, "audio/ogg")
    start, end = t0.isoformat(), (t0 + timedelta(seconds=5)).isoformat()
    url = f"/v1/machines/{machine_id}/labels"
    for label in ("", "a b", "-dash", "x" * 101, "naïve"):
        problem(admin.post(url, json={"start": start, "end": end, "label": label}), 422,
                "label")
    problem(admin.post(url, json={"start": end, "end": start, "label": "ok"}), 422,
            "must be after start")
    problem(admin.post(url, json={"start": "2026-01-01T00:00:00", "end": end,
                                  "label": "ok"}), 422, "start")
    problem(admin.post(url, json={"start": start, "end": end, "label": "ok", "x": 1}), 422)
    problem(admin.post(f"/v1/machines/{uuid.uuid4()}/labels",
                       json={"start": start, "end": end, "label": "ok"}), 404,
            "does not exist")
    problem(admin.get(f"/v1/machines/{uuid.uuid4()}/labels"), 404)
    problem(admin.delete(f"{url}/{uuid.uuid4()}"), 404)
    assert count(conn, LABELS) == 0
    anonymous = admin.post(url, json={"start": start, "end": end, "label": "ok"},
                           headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert count(conn, LABELS) == 0
