"""Training through the API: POST train -> 202 -> the job runner (driven in-process, as
the scheduler would) -> job succeeded -> versioned models, activation and rollback,
first-activation backfill and the model.trained / model.failed webhook events."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from detectors import registry
from service.db import make_pool
from service.settings import Settings
from service.training import runner
from tests.service.api.test_detectors import assert_problem
from tests.service.training.helpers import (
    make_machine,
    real_windows,
    recent,
    store_baseline,
    store_windows,
)


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    with make_pool(settings, max_size=4) as the_pool:
        yield the_pool


@pytest.fixture
def machine(admin: TestClient, conn: psycopg.Connection) -> tuple[UUID, UUID]:
    """A machine with one sensor whose real healthy windows of the last hour are a
    baseline, and an ECOD detector (fast: the API flow is under test here)."""
    machine_id, (sensor_id,) = make_machine(conn)
    store_baseline(conn, machine_id, sensor_id, real_windows(), recent(3600))
    assert admin.put(f"/v1/machines/{machine_id}/detector",
                     json={"algorithm": "ecod"}).status_code == 200
    return machine_id, sensor_id


def train_and_run(admin: TestClient, settings: Settings, pool: ConnectionPool,
                  machine_id: UUID) -> dict[str, Any]:
    accepted = admin.post(f"/v1/machines/{machine_id}/train")
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert accepted.headers["location"] == f"/v1/jobs/{job_id}"
    assert admin.get(f"/v1/jobs/{job_id}").json()["state"] == "queued"
    outcome = runner.run_one(settings, pool)
    assert outcome is not None and str(outcome.job_id) == job_id
    job: dict[str, Any] = admin.get(f"/v1/jobs/{job_id}").json()
    return job


def models(admin: TestClient, machine_id: UUID) -> list[dict[str, Any]]:
    response = admin.get(f"/v1/machines/{machine_id}/models")
    assert response.status_code == 200
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_train_job_model_lifecycle(admin: TestClient, settings: Settings, pool: ConnectionPool,
                                   machine: tuple[UUID, UUID]) -> None:
    machine_id, _ = machine
    job = train_and_run(admin, settings, pool, machine_id)
    assert (job["state"], job["model_version"], job["error"], job["attempts"],
            job["trigger"]) == ("succeeded", 1, None, 1, "manual")
    assert job["started_at"] and job["finished_at"]

    (model,) = models(admin, machine_id)
    assert model["version"] == 1 and model["active"] and model["activated_at"]
    assert model["algorithm"] == "ecod" and model["params"] == {"max_train": 10000,
                                                                "random_state": 0}
    assert model["n_windows"] == len(real_windows())
    assert model["threshold"] > 0 and model["fit_seconds"] > 0
    assert model["threshold_config"]["q"] == 0.99
    assert set(model["score_stats"]) == {"train", "holdout"}
    assert model["artifact_bytes"] > 1000 and len(model["artifact_sha256"]) == 64
    assert "artifact" not in model  # never the bytes
    assert model["job_id"] == job["id"]
    assert admin.get(f"/v1/machines/{machine_id}/models/1").json() == model
    listed = admin.get(f"/v1/machines/{machine_id}/jobs").json()["items"]
    assert [j["id"] for j in listed] == [job["id"]]


def test_auto_manual_activation_and_rollback(admin: TestClient, settings: Settings,
                                             pool: ConnectionPool,
                                             machine: tuple[UUID, UUID]) -> None:
    machine_id, _ = machine
    train_and_run(admin, settings, pool, machine_id)
    admin.put(f"/v1/machines/{machine_id}/detector", json={"algorithm": "gmm",
                                                           "activation": "manual"})
    job = train_and_run(admin, settings, pool, machine_id)
    assert job["model_version"] == 2
    assert [(m["version"], m["active"]) for m in models(admin, machine_id)] == [
        (2, False), (1, True)]  # manual: trained, not live

    activated = admin.post(f"/v1/machines/{machine_id}/models/2/activate")
    assert activated.status_code == 200 and activated.json()["active"]
    assert [(m["version"], m["active"]) for m in models(admin, machine_id)] == [
        (2, True), (1, False)]
    rollback = admin.post(f"/v1/machines/{machine_id}/models/1/activate")
    assert rollback.status_code == 200 and rollback.json()["algorithm"] == "ecod"
    assert [(m["version"], m["active"]) for m in models(admin, machine_id)] == [
        (2, False), (1, True)]

    admin.put(f"/v1/machines/{machine_id}/detector", json={"algorithm": "gmm"})  # auto
    assert train_and_run(admin, settings, pool, machine_id)["model_version"] == 3
    assert [m["version"] for m in models(admin, machine_id) if m["active"]] == [3]
    assert_problem(admin.post(f"/v1/machines/{machine_id}/models/9/activate"), 404)
    assert_problem(admin.post(f"/v1/machines/{uuid.uuid4()}/models/1/activate"), 404)
    assert_problem(admin.get(f"/v1/machines/{machine_id}/models/{2**31}"), 422)
    assert_problem(admin.get(f"/v1/machines/{machine_id}/models?target=anomaly"), 422)


def test_first_activation_queues_the_backfill(admin: TestClient, settings: Settings,
                                              pool: ConnectionPool, conn: psycopg.Connection,
                                              machine: tuple[UUID, UUID]) -> None:
    machine_id, sensor_id = machine
    old = store_windows(conn, sensor_id, real_windows()[:30], recent(3 * 86400))
    conn.execute("DELETE FROM ingest_batches")  # as if the scorer had consumed them
    conn.commit()
    admin.put(f"/v1/machines/{machine_id}/detector", json={"algorithm": "ecod",
                                                           "backfill": 7200})
    train_and_run(admin, settings, pool, machine_id)

    rows = conn.execute("SELECT sensor_id, t_min, t_max, n FROM ingest_batches").fetchall()
    assert len(rows) == 1
    batch_sensor, t_min, _, n = rows[0]
    assert batch_sensor == sensor_id and n == len(real_windows())  # the last 2 h only
    assert t_min >= recent(7200) and t_min > old.end
    conn.execute("DELETE FROM ingest_batches")
    conn.commit()

    train_and_run(admin, settings, pool, machine_id)  # version 2 activates: no backfill
    admin.post(f"/v1/machines/{machine_id}/models/1/activate")
    assert conn.execute("SELECT count(*) FROM ingest_batches").fetchone() == (0,)


def test_train_needs_a_known_target(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    problem = assert_problem(admin.post(f"/v1/machines/{machine_id}/train",
                                        json={"target": "classifier"}), 409)
    assert "no classifier configured" in problem["detail"]
    problem = assert_problem(admin.post(f"/v1/machines/{machine_id}/train",
                                        json={"target": "regressor"}), 422)
    assert problem["valid"] == ["classifier", "detector"]
    assert_problem(admin.post(f"/v1/machines/{uuid.uuid4()}/train"), 404)
    assert_problem(admin.get(f"/v1/jobs/{uuid.uuid4()}"), 404)
    assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM model_configs").fetchone() == (0,)


def test_train_without_a_detector_stores_the_recommended_one(
        admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    assert_problem(admin.get(f"/v1/machines/{machine_id}/detector"), 404)
    assert admin.post(f"/v1/machines/{machine_id}/train").status_code == 202
    config = admin.get(f"/v1/machines/{machine_id}/detector").json()
    assert config["algorithm"] == registry.RECOMMENDED and config["activation"] == "auto"
    assert config["params"] == registry.validate_params(registry.RECOMMENDED, {})
    assert config["retrain_cron"] is None
    listed = admin.get("/v1/detectors").json()["algorithms"]
    assert [a["name"] for a in listed if a["recommended"]] == [registry.RECOMMENDED]


def test_repeated_requests_share_the_queued_job(admin: TestClient,
                                                machine: tuple[UUID, UUID]) -> None:
    machine_id, _ = machine
    first = admin.post(f"/v1/machines/{machine_id}/train", json={"target": "detector"})
    second = admin.post(f"/v1/machines/{machine_id}/train")
    assert first.json()["job_id"] == second.json()["job_id"]


def test_model_events_are_queued_with_the_job_state(admin: TestClient, settings: Settings,
                                                    pool: ConnectionPool,
                                                    conn: psycopg.Connection,
                                                    machine: tuple[UUID, UUID]) -> None:
    machine_id, _ = machine
    hook = admin.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook",
                                            "events": ["model.trained", "model.failed"]})
    assert hook.status_code == 201, hook.text
    job = train_and_run(admin, settings, pool, machine_id)
    conn.execute("DELETE FROM baselines WHERE machine_id = %s", (machine_id,))
    conn.commit()
    failed = train_and_run(admin, settings, pool, machine_id)
    assert failed["state"] == "failed" and "got 0 training windows" in failed["error"]

    rows = conn.execute("SELECT event_type, body FROM webhook_messages "
                        "ORDER BY created_at").fetchall()
    assert [r[0] for r in rows] == ["model.trained", "model.failed"]
    trained, failure = (json.loads(r[1])["data"] for r in rows)
    assert (trained["machine_id"], trained["version"], trained["job_id"]) == (
        str(machine_id), 1, job["id"])
    assert trained["active"] is True and trained["links"]["job"] == f"/v1/jobs/{job['id']}"
    assert failure["job_id"] == failed["id"] and failure["error"] == failed["error"]
