"""The fleet embedding's training runs through the API and the worker loop, on real
ESC-10 audio held by the audio store: one open run at a time, versions, the schedule,
what is missing when there is no audio, and the stored artifacts."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from detectors import fleet_embedding
from service.fleet import schedule, train
from service.queries import fleet_embeddings as q
from service.settings import Settings
from tests.service.classification.helpers import (
    esc10_clips,
    load_16k,
    make_sensor,
    problem,
    upload,
    wav,
    whole_seconds_ago,
)
from tests.service.fleet.helpers import QUICK, fleet_with_audio


def test_no_audio_is_a_422_naming_what_is_missing(admin: TestClient) -> None:
    problem(admin.post("/v1/fleet/embedding/train", json=QUICK), 422, "stored audio",
            "POST /v1/sensors/{id}/audio")
    listed = admin.get("/v1/fleet/embedding").json()
    assert listed["items"] == [] and listed["latest_version"] is None


def test_a_run_trains_a_version_from_every_machines_audio(
        admin: TestClient, settings: Settings, pool: ConnectionPool) -> None:
    fleet_with_audio(admin)
    queued = admin.post("/v1/fleet/embedding/train", json=QUICK)
    assert queued.status_code == 202, queued.text
    assert queued.json()["state"] == "queued" and queued.json()["params"] == QUICK
    # Guarded in the database: a second run is refused while one is open.
    problem(admin.post("/v1/fleet/embedding/train", json=QUICK), 409, queued.json()["id"])
    ran = train.run_one(settings, pool)
    assert ran is not None and ran[1] == 1
    assert train.run_one(settings, pool) is None  # nothing left to claim

    run = admin.get(f"/v1/fleet/embedding/runs/{queued.json()['id']}").json()
    assert run["state"] == "succeeded", run["error"]
    version = admin.get("/v1/fleet/embedding/1").json()
    assert version["kind"] == "fleet-v1" and version["dim"] == 64
    assert version["n_recordings"] == 4 and version["n_windows"] == 20
    assert len(version["aux_classes"]) == 2  # machine/sensor/condition: two machines
    assert version["metrics"]["aux_task"] == "machine/sensor/condition"
    assert version["metrics"]["epochs"] >= 1
    assert {"torch", "onnx", "format"} - set(version["library_versions"]) == {"onnx"}
    assert admin.get("/v1/fleet/embedding").json()["latest_version"] == 1
    # A second run gets the next version.
    assert admin.post("/v1/fleet/embedding/train", json=QUICK).status_code == 202
    assert train.run_one(settings, pool) is not None
    assert admin.get("/v1/fleet/embedding").json()["latest_version"] == 2


def test_artifacts_load_and_match_their_checksums(
        admin: TestClient, settings: Settings, pool: ConnectionPool,
        conn: psycopg.Connection) -> None:
    fleet_with_audio(admin)
    assert admin.post("/v1/fleet/embedding/train", json=QUICK).status_code == 202
    train.run_one(settings, pool)
    found = q.artifact(conn, 1)
    assert found is not None
    blob, digest = found
    assert hashlib.sha256(blob).hexdigest() == digest
    module = fleet_embedding.load(blob)
    vectors = fleet_embedding.embed(module, np.zeros((3, 16000), np.float32))
    assert vectors.shape == (3, 64) and np.isfinite(vectors).all()
    onnx = admin.get("/v1/fleet/embedding/1.onnx")
    assert onnx.status_code == 200
    assert hashlib.sha256(onnx.content).hexdigest() == onnx.headers["Earshot-Sha256"]
    problem(admin.get("/v1/fleet/embedding/7.onnx"), 404, "version 7")


def test_one_recording_fails_the_run_with_what_is_missing(
        admin: TestClient, settings: Settings, pool: ConnectionPool) -> None:
    _, sensor_id = make_sensor(admin, name="lonely")
    upload(admin, sensor_id, wav(load_16k(esc10_clips("rooster")[0])), whole_seconds_ago(600))
    queued = admin.post("/v1/fleet/embedding/train", json=QUICK).json()
    ran = train.run_one(settings, pool)
    assert ran is not None and ran[1] is None
    run = admin.get(f"/v1/fleet/embedding/runs/{queued['id']}").json()
    assert run["state"] == "failed" and "1 recording(s)" in run["error"], run
    assert run["version"] is None


def test_schedule_queues_once_a_day_while_audio_is_held(
        admin: TestClient, settings: Settings, pool: ConnectionPool) -> None:
    assert schedule.enqueue_due(settings, pool) is None  # no audio yet
    fleet_with_audio(admin, clips=1)
    now = datetime.now(UTC)
    first = schedule.enqueue_due(settings, pool, now)
    assert first is not None and first["trigger"] == "schedule"
    assert schedule.enqueue_due(settings, pool, now) is None  # one open run, one per day
    with pool.connection() as conn:
        conn.execute("UPDATE fleet_embeddings SET params = %s", (Jsonb({"max_epochs": 1}),))
    assert train.run_one(settings, pool) is not None
    assert schedule.enqueue_due(settings, pool, now + timedelta(hours=1)) is None  # fresh
    later = schedule.enqueue_due(settings, pool, now + timedelta(hours=25))
    assert later is not None and later["slot"] != first["slot"]
    off = settings.model_copy(update={"fleet_retrain_hours": 0})
    assert schedule.enqueue_due(off, pool, now + timedelta(days=9)) is None


def test_a_dead_workers_run_is_taken_over_and_its_late_result_dropped(
        admin: TestClient, settings: Settings, pool: ConnectionPool) -> None:
    """A worker that claimed a run and stopped heartbeating (killed): another worker
    claims it again and stores the version; the first worker's late result is refused,
    so a run never stores two versions."""
    fleet_with_audio(admin, clips=1)
    assert admin.post("/v1/fleet/embedding/train", json=QUICK).status_code == 202
    with pool.connection() as conn, conn.transaction():
        dead = q.claim(conn, settings.train_stale_s)
    assert dead is not None and dead.attempts == 1
    with pool.connection() as conn, conn.transaction():
        assert q.claim(conn, settings.train_stale_s) is None  # still fresh: nobody else
        conn.execute("UPDATE fleet_embeddings SET heartbeat_at = now() - interval '1 hour'")
    ran = train.run_one(settings, pool)
    assert ran is not None and ran[0].attempts == 2 and ran[1] == 1
    with pool.connection() as conn, conn.transaction():
        late = {"n_recordings": 0, "n_windows": 0, "aux_classes": [], "dim": 64,
                "metrics": {}, "fit_seconds": 0.0, "library_versions": {},
                "artifact": b"x", "artifact_sha256": "x", "onnx": b"x", "onnx_sha256": "x"}
        assert q.succeed(conn, dead, late) is None
    listed = admin.get("/v1/fleet/embedding").json()
    assert [r["version"] for r in listed["items"]] == [1] and listed["latest_version"] == 1


def test_old_failed_runs_and_unused_versions_are_pruned(
        admin: TestClient, settings: Settings, pool: ConnectionPool,
        conn: psycopg.Connection) -> None:
    """Kept: the newest version and every version a sensor or model names."""
    fleet_with_audio(admin, clips=1)
    for _ in range(3):
        assert admin.post("/v1/fleet/embedding/train", json=QUICK).status_code == 202
        assert train.run_one(settings, pool) is not None
    machine = admin.post("/v1/machines", json={"name": "m", "kind": "fan"}).json()["id"]
    assert admin.post(f"/v1/machines/{machine}/sensors", json={
        "name": "mic", "embedding": {"kind": "fleet-v1"}}).status_code == 201
    with conn.transaction():
        conn.execute("INSERT INTO fleet_embeddings (trigger, state, error) "
                     "VALUES ('api', 'failed', 'x')")
    assert schedule.enqueue_due(settings, pool) is None  # fresh: nothing old enough yet
    assert len(admin.get("/v1/fleet/embedding").json()["items"]) == 4
    with conn.transaction():
        conn.execute("UPDATE fleet_embeddings SET created_at = now() - interval '1000 days'")
    schedule.enqueue_due(settings.model_copy(update={"fleet_retrain_hours": 0}), pool)
    left = admin.get("/v1/fleet/embedding").json()["items"]
    assert sorted(r["version"] for r in left) == [1, 3]  # named by a sensor; the newest
