"""Embedding kind `logmel-gwrp-v1` through the public API on real BLDC motor audio (M1): a
sensor of that kind gets the server's pooled windows from uploaded WAVs, a `gmm` detector
(TWFR-GMM's pairing) trains on them and scores new audio; re-embedding switches a
logmel-v1 sensor to it; bad bodies get the same problem+json answers as for logmel-v1; its
band means draw the spectrogram where no audio is kept."""

from __future__ import annotations

import io
import threading
from datetime import datetime, timedelta
from uuid import UUID

import numpy as np
import psycopg
import soundfile as sf
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from ingest.features import LOGMEL_GWRP_V1, embed
from ingest.store import read_windows
from service import reembed as reembed_worker
from service.queries import reembed
from service.settings import Settings
from tests.conftest import DATA_DIR
from tests.service.classification.helpers import (
    problem,
    score_all,
    train,
    upload,
    whole_seconds_ago,
)

BLDC = DATA_DIR / "bldc"
DIM = 192


def _clip(condition: str, rpm: int) -> bytes:
    return (BLDC / f"bldc_motor__{condition}_M1_{rpm}rpm.wav").read_bytes()


def _decoded(body: bytes) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(io.BytesIO(body), dtype="float32", always_2d=True)
    return samples, int(rate)


def _machine(admin: TestClient, kind: str = LOGMEL_GWRP_V1) -> tuple[str, str]:
    machine = admin.post("/v1/machines", json={"name": "m1", "kind": "motor"}).json()["id"]
    sensor = admin.post(f"/v1/machines/{machine}/sensors",
                        json={"name": "mic", "embedding": {"kind": kind}})
    assert sensor.status_code == 201, sensor.text
    return machine, sensor.json()["id"]


def test_gwrp_sensor_gmm_detector_trains_and_scores(
        admin: TestClient, settings: Settings, pool: ConnectionPool,
        conn: psycopg.Connection) -> None:
    machine_id, sensor_id = _machine(admin)
    sensor = admin.get(f"/v1/sensors/{sensor_id}").json()
    assert sensor["embedding"] == {"kind": LOGMEL_GWRP_V1, "dim": DIM, "builtin": True}
    assert sensor["window_s"] == 1.0
    chosen = admin.put(f"/v1/machines/{machine_id}/detector", json={"algorithm": "gmm"})
    assert chosen.status_code == 200, chosen.text

    at = whole_seconds_ago(3600)
    first = at
    for rpm in (1400, 1450, 1550, 1650, 1750, 1850):
        stored = upload(admin, sensor_id, _clip("healthy", rpm), at, baseline="true")
        assert stored["windows"] == 10
        at += timedelta(seconds=30)
    times, values = read_windows(conn, UUID(sensor_id), first, first + timedelta(seconds=10),
                                 DIM)
    assert len(times) == 10
    np.testing.assert_allclose(values, embed(*_decoded(_clip("healthy", 1400)),
                                             LOGMEL_GWRP_V1), rtol=1e-5, atol=1e-5)

    job = train(admin, settings, pool, machine_id, "detector")
    assert job["state"] == "succeeded", job["error"]
    model = admin.get(f"/v1/machines/{machine_id}/models/1").json()
    assert (model["algorithm"], model["embedding_kind"], model["dim"]) == (
        "gmm", LOGMEL_GWRP_V1, DIM)

    healthy_at, fault_at = at, at + timedelta(seconds=30)
    upload(admin, sensor_id, _clip("healthy", 1950), healthy_at)
    upload(admin, sensor_id, _clip("propeller", 1450), fault_at)
    score_all(pool)
    scores = admin.get(f"/v1/machines/{machine_id}/scores", params={
        "start": healthy_at.isoformat(), "end": (fault_at + timedelta(seconds=30)).isoformat()})
    assert scores.status_code == 200, scores.text
    items = scores.json()["items"]
    assert len(items) == 20 and all(np.isfinite(s["score"]) for s in items)
    fault = [s for s in items if datetime.fromisoformat(s["t"]) >= fault_at]
    healthy = [s for s in items if s not in fault]
    assert len(fault) == len(healthy) == 10
    # Measured: the unseen healthy speed scores ~320-470, the propeller fault ~880-1100
    # against a threshold between; margins kept loose.
    assert sum(s["anomalous"] for s in fault) >= 8
    assert sum(s["anomalous"] for s in healthy) <= 2
    assert min(s["score"] for s in fault) > max(s["score"] for s in healthy)


def test_reembedding_switches_a_logmel_v1_sensor_to_gwrp(
        admin: TestClient, pool: ConnectionPool, conn: psycopg.Connection) -> None:
    _, sensor_id = _machine(admin, "logmel-v1")
    start = whole_seconds_ago(3600)
    upload(admin, sensor_id, _clip("healthy", 1450), start)
    body = {"start": start.isoformat(), "end": (start + timedelta(seconds=30)).isoformat(),
            "kind": LOGMEL_GWRP_V1}
    problem(admin.post(f"/v1/sensors/{sensor_id}/reembed", json=body), 409)  # 128 -> 192
    queued = admin.post(f"/v1/sensors/{sensor_id}/reembed", json=body,
                        params={"confirm": "delete-data"})
    assert queued.status_code == 202, queued.text
    assert admin.get(f"/v1/sensors/{sensor_id}").json()["embedding"]["dim"] == DIM
    with pool.connection() as c, c.transaction():
        claimed = reembed.claim(c, stale_s=60)
    assert claimed is not None
    reembed_worker.process(pool, claimed, threading.Event())
    done = admin.get(f"/v1/sensors/{sensor_id}/reembed/{queued.json()['id']}").json()
    assert done["state"] == "succeeded" and done["windows"] == 10, done
    _, values = read_windows(conn, UUID(sensor_id), start, start + timedelta(seconds=30), DIM)
    np.testing.assert_allclose(values, embed(*_decoded(_clip("healthy", 1450)),
                                             LOGMEL_GWRP_V1), rtol=1e-5, atol=1e-5)


def test_bad_bodies_get_the_same_answers_as_for_logmel_v1(
        admin: TestClient, conn: psycopg.Connection) -> None:
    machine = admin.post("/v1/machines", json={"name": "m", "kind": "motor"}).json()["id"]
    url = f"/v1/machines/{machine}/sensors"
    explicit = admin.post(url, json={"name": "a", "embedding": {"kind": LOGMEL_GWRP_V1,
                                                                 "dim": DIM}})
    assert explicit.status_code == 201, explicit.text
    cases = [
        ({"kind": LOGMEL_GWRP_V1, "dim": 128}, {}, "has dim 192"),
        ({"kind": LOGMEL_GWRP_V1}, {"window_s": 2.0}, "uses 1 s windows"),
        ({"kind": "logmel-gwrp-v2"}, {}, "dim is required"),  # unknown: not built-in
        ({"kind": "logmel gwrp"}, {}, "kind"),
    ]
    for embedding, extra, why in cases:
        response = admin.post(url, json={"name": "s", "embedding": embedding, **extra})
        body = problem(response, 422)
        assert why in str(body), (why, body)
    unknown = admin.post(url, json={"name": "s", "embedding": {"kind": "logmel-gwrp-v2"}})
    assert LOGMEL_GWRP_V1 in str(unknown.json())  # the built-in kinds are listed
    sensor = explicit.json()["id"]
    problem(admin.post(f"/v1/sensors/{sensor}/reembed", json={
        "start": "2026-11-20T08:00:00Z", "end": "2026-11-20T09:00:00Z",
        "kind": "logmel-gwrp-v2"}), 422)
    assert conn.execute("SELECT count(*) FROM sensors").fetchone() == (1,)


def test_spectrogram_from_gwrp_windows_uses_their_band_means(admin: TestClient) -> None:
    machine = admin.post("/v1/machines", json={"name": "fan", "kind": "fan"}).json()["id"]
    sensor = admin.post(f"/v1/machines/{machine}/sensors", json={
        "name": "mic", "embedding": {"kind": LOGMEL_GWRP_V1}, "audio": {"policy": "off"}})
    assert sensor.status_code == 201, sensor.text
    start = whole_seconds_ago(600)
    upload(admin, sensor.json()["id"], _clip("healthy", 1450), start)
    coarse = admin.get(f"/v1/machines/{machine}/spectrogram", params={
        "start": start.isoformat(), "end": (start + timedelta(seconds=10)).isoformat()},
        headers={"accept": "application/json"})
    assert coarse.status_code == 200, coarse.text
    body = coarse.json()
    assert body["source"] == "embeddings" and len(body["times_s"]) == 10
    assert len(body["values_db"]) == 64
