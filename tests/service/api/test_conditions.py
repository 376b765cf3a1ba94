"""`/v1/machines/{id}/conditions`: operating-condition ranges through the API, the audio
upload's `condition` parameter, and detector training on them: the public path with
defaults (no embedding, no detector chosen) and a few-shot new condition added later
without repeating the original baseline. Real BLDC motor audio (M1)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from detectors import registry
from service.settings import Settings
from tests.conftest import DATA_DIR
from tests.service.api.test_detectors import assert_problem
from tests.service.classification.helpers import score_all, train, upload, whole_seconds_ago
from tests.service.training.helpers import make_machine

BLDC = DATA_DIR / "bldc"


def url(machine_id: object) -> str:
    return f"/v1/machines/{machine_id}/conditions"


def _clip(condition: str, rpm: int) -> bytes:
    return (BLDC / f"bldc_motor__{condition}_M1_{rpm}rpm.wav").read_bytes()


def test_create_list_delete(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    named = admin.post(url(machine_id), json={"start": "2026-11-20T08:00:00Z",
                                              "end": "2026-11-20T09:00:00Z",
                                              "name": "night shift"})
    assert named.status_code == 201, named.text
    assert named.json()["name"] == "night shift" and named.json()["attributes"] == {}
    derived = admin.post(url(machine_id), json={
        "start": "2026-11-20T07:00:00Z", "end": "2026-11-20T08:00:00Z",
        "attributes": {"rpm": 1800, "load": "high"}}).json()
    assert derived["name"] == "load=high,rpm=1800" and derived["source"] == "user"
    listed = admin.get(url(machine_id)).json()
    assert [c["id"] for c in listed["items"]] == [derived["id"], named.json()["id"]]
    assert admin.delete(f"{url(machine_id)}/{derived['id']}").status_code == 204
    assert_problem(admin.delete(f"{url(machine_id)}/{derived['id']}"), 404)
    assert [c["id"] for c in admin.get(url(machine_id)).json()["items"]] == \
        [named.json()["id"]]
    assert_problem(admin.post(url(uuid.uuid4()), json={
        "start": "2026-11-20T08:00:00Z", "end": "2026-11-20T09:00:00Z", "name": "x"}), 404)
    assert_problem(admin.get(url(uuid.uuid4())), 404)
    for bad in ({"name": "x"}, {"start": "2026-11-20T08:00:00Z", "end": "2026-11-20T09:00:00Z",
                                "name": "x", "attributes": {"rpm": [1]}}):
        assert_problem(admin.post(url(machine_id), json=bad), 422)
    row = conn.execute("SELECT count(*) FROM machine_conditions").fetchone()
    assert row == (1,)


def test_defaults_then_a_few_shot_new_condition(admin: TestClient, settings: Settings,
                                                pool: ConnectionPool) -> None:
    """Create machine and sensor (no embedding), upload baseline audio, POST /train (no
    detector chosen), upload, read scores; then a minute of a new speed as new normal."""
    machine_id = admin.post("/v1/machines", json={"name": "m1", "kind": "motor"}).json()["id"]
    sensor = admin.post(f"/v1/machines/{machine_id}/sensors", json={"name": "mic"})
    assert sensor.status_code == 201, sensor.text
    assert sensor.json()["embedding"] == {"kind": "logmel-v1", "dim": 128, "builtin": True}
    sensor_id, at = sensor.json()["id"], whole_seconds_ago(3600)
    for rpm in (1400, 1450, 1550, 1650, 1750, 1850):
        upload(admin, sensor_id, _clip("healthy", rpm), at, baseline="true")
        at += timedelta(seconds=30)
    job = train(admin, settings, pool, machine_id, "detector")
    assert job["state"] == "succeeded", job["error"]
    config = admin.get(f"/v1/machines/{machine_id}/detector").json()
    assert config["algorithm"] == registry.RECOMMENDED
    model = admin.get(f"/v1/machines/{machine_id}/models/1").json()
    basis = model["metrics"]["threshold_basis"]
    assert basis["training_recordings"] == 6 and basis["holdout_recordings"] == 6
    assert basis["confidence"] in ("low", "medium", "high")
    assert model["metrics"]["conditions"] == {}

    fault_at = at
    upload(admin, sensor_id, _clip("propeller", 1450), at)
    at += timedelta(seconds=30)
    score_all(pool)
    scores = admin.get(f"/v1/machines/{machine_id}/scores",
                       params={"start": fault_at.isoformat(), "end": at.isoformat()}).json()
    assert len(scores["items"]) == 10
    # Each baseline recording is another speed, so the threshold (calibrated on recordings
    # the model did not see) allows for a whole unseen speed: fewer fault windows cross it
    # than with a per-window threshold, but a 3-of-5 alert rule still sees the fault.
    assert sum(s["anomalous"] for s in scores["items"]) >= 3

    # A new speed: one clip of normal audio in the new condition, nothing repeated.
    upload(admin, sensor_id, _clip("healthy", 1950), at, baseline="true", condition="1950rpm")
    at += timedelta(seconds=30)
    job = train(admin, settings, pool, machine_id, "detector")
    assert job["state"] == "succeeded", job["error"]
    model = admin.get(f"/v1/machines/{machine_id}/models/2").json()
    assert model["metrics"]["conditions"] == {"default": 60, "1950rpm": 10}
    (condition,) = admin.get(url(machine_id)).json()["items"]
    assert condition["name"] == "1950rpm" and condition["source"] == "audio-upload"
