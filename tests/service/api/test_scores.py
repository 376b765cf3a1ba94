"""GET /v1/machines/{id}/scores (keyset pages) and /health (untrained, no_data, ok,
anomalous) on the real database, with a detector trained on real BLDC recordings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from service.training import models as training_models
from tests.service.scoring.factories import (
    activate_model,
    copy_scores,
    make_machine,
    series,
    trained_blob,
    utc,
)

PROBLEM = "application/problem+json"
DIRECT = """
SELECT t, sensor_id, score, threshold, anomalous, model_version FROM scores
WHERE machine_id = %s AND t >= %s AND t < %s ORDER BY t, sensor_id, model_version
"""


@pytest.fixture(autouse=True)
def _fresh_model_cache() -> None:
    training_models.clear_cache()


def _all_pages(admin: TestClient, machine_id: UUID, params: dict[str, Any]) -> list[dict]:
    items: list[dict] = []
    cursor = None
    for _ in range(100):
        page = admin.get(f"/v1/machines/{machine_id}/scores",
                         params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) <= params["limit"]
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    pytest.fail("pagination did not end")


def test_scores_pages_follow_the_keyset_exactly(admin: TestClient,
                                                conn: psycopg.Connection) -> None:
    machine_id, (a, b) = make_machine(conn, sensors=2)
    t0 = utc(2026, 11, 20, 8)
    times = series(t0, 1, 25)
    copy_scores(conn, machine_id, a, times, np.linspace(0, 1, 25), 0.5)
    copy_scores(conn, machine_id, b, times, np.linspace(1, 0, 25), 0.5)  # same t: ties
    copy_scores(conn, machine_id, b, times[:5], np.full(5, 0.9), 0.7, version=2)
    params = {"start": "2026-11-20T08:00:03Z", "end": "2026-11-20T08:00:20Z", "limit": 7}
    items = _all_pages(admin, machine_id, params)
    expected = conn.execute(DIRECT, (machine_id, t0 + timedelta(seconds=3),
                                     t0 + timedelta(seconds=20))).fetchall()
    assert len(items) == len(expected) == 2 * 17 + 2
    for item, row in zip(items, expected, strict=True):
        assert datetime.fromisoformat(item["t"]) == row[0]
        assert (UUID(item["sensor_id"]), item["model_version"], item["anomalous"]) == \
            (row[1], row[5], row[4])
        assert item["score"] == pytest.approx(row[2]) and item["threshold"] == \
            pytest.approx(row[3])
    whole = admin.get(f"/v1/machines/{machine_id}/scores", params={**params, "limit": 1000})
    assert whole.json()["next_cursor"] is None and whole.json()["items"] == items


def test_scores_bad_parameters_are_problems(admin: TestClient,
                                            conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    url = f"/v1/machines/{machine_id}/scores"
    cases = [
        ({"start": "2026-11-20T10:00:00Z", "end": "2026-11-20T09:00:00Z"}, 422, "after start"),
        ({"cursor": "not-a-cursor"}, 422, "cursor"),
        ({"limit": 0}, 422, "limit"),
        ({"end": "yesterday"}, 422, "end"),
    ]
    for params, status, words in cases:
        response = admin.get(url, params=params)
        assert response.status_code == status, (params, response.text)
        assert response.headers["content-type"] == PROBLEM
        assert words in response.json()["detail"], response.json()
    for path in ("scores", "health"):
        missing = admin.get(f"/v1/machines/{UUID(int=7)}/{path}")
        assert missing.status_code == 404 and missing.headers["content-type"] == PROBLEM


def test_reading_needs_a_read_key(admin: TestClient, app_client: TestClient,
                                  conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    key = admin.post("/v1/api-keys", json={"name": "viewer", "role": "read"}).json()["key"]
    sensor = admin.post(f"/v1/machines/{machine_id}/sensors",
                        json={"name": "extra", "embedding": {"kind": "logmel-v1"}}).json()
    for path in ("scores", "timeline", "health"):
        url = f"/v1/machines/{machine_id}/{path}"
        assert admin.get(url, headers={"Authorization": f"Bearer {key}"}).status_code == 200
        as_sensor = admin.get(url, headers={"Authorization": f"Bearer {sensor['ingest_token']}"})
        assert as_sensor.status_code == 403
        assert admin.get(url, headers={"Authorization": ""}).status_code == 401


def _health(admin: TestClient, machine_id: UUID) -> dict[str, Any]:
    response = admin.get(f"/v1/machines/{machine_id}/health")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_health_states(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, (sensor,) = make_machine(conn)
    untrained = _health(admin, machine_id)
    assert (untrained["state"], untrained["model"], untrained["latest"]) == \
        ("untrained", None, None)

    version = activate_model(conn, machine_id)
    threshold = trained_blob()[2]
    no_data = _health(admin, machine_id)
    assert no_data["state"] == "no_data"
    assert no_data["model"]["version"] == version
    assert no_data["model"]["algorithm"] == "iforest"

    now = datetime.now(UTC).replace(microsecond=0)
    normal = np.full(30, threshold * 0.5)
    normal[::5] = threshold * 2  # a few anomalous windows do not make the machine anomalous
    copy_scores(conn, machine_id, sensor, series(now - timedelta(seconds=100), 1, 30), normal,
                threshold, version)
    ok = _health(admin, machine_id)
    assert ok["state"] == "ok"
    assert ok["recent"] == {"seconds": 60.0, "windows": 30, "anomalous": 6}
    assert datetime.fromisoformat(ok["latest"]["t"]) == now - timedelta(seconds=71)

    copy_scores(conn, machine_id, sensor, series(now - timedelta(seconds=40), 1, 40),
                np.full(40, threshold * 3), threshold, version)
    anomalous = _health(admin, machine_id)
    assert anomalous["state"] == "watch"  # above the threshold, no alert (yet): watch
    assert anomalous["latest"]["anomalous"] is True
    assert anomalous["recent"]["anomalous"] * 2 > anomalous["recent"]["windows"]


def test_health_is_no_data_when_scores_stop(admin: TestClient,
                                            conn: psycopg.Connection) -> None:
    machine_id, (sensor,) = make_machine(conn)
    version = activate_model(conn, machine_id)
    stale = datetime.now(UTC) - timedelta(hours=1)
    copy_scores(conn, machine_id, sensor, series(stale, 1, 10), np.zeros(10), 1.0, version)
    body = _health(admin, machine_id)
    assert body["state"] == "no_data"
    assert datetime.fromisoformat(body["latest"]["t"]) == stale + timedelta(seconds=9)
