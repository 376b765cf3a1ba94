"""Embedding kind `fleet-v<N>` through the API on real ESC-10 audio: a sensor of that
kind gets windows the server computes with version N; a per-machine detector trains and
scores on them unchanged; a newer version leaves the sensor and its detector on N until
the sensor is re-embedded to the new version (then retrained)."""

from __future__ import annotations

import io
import threading
from datetime import timedelta
from uuid import UUID

import numpy as np
import psycopg
import soundfile as sf
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from detectors import fleet_embedding
from ingest.client import windows_json
from ingest.features import windows_16k
from ingest.store import read_windows
from service import reembed as reembed_worker
from service.fleet import train as fleet_train
from service.queries import fleet_embeddings as q
from service.queries import reembed
from service.settings import Settings
from tests.service.classification.helpers import (
    SR,
    count,
    esc10_clips,
    load_16k,
    problem,
    score_all,
    train,
    upload,
    wav,
)
from tests.service.fleet.helpers import QUICK, fleet_with_audio

SCORES = "SELECT count(*) FROM scores WHERE sensor_id = %s AND model_version = %s"


def _new_version(admin: TestClient, settings: Settings, pool: ConnectionPool) -> int:
    assert admin.post("/v1/fleet/embedding/train", json=QUICK).status_code == 202
    ran = fleet_train.run_one(settings, pool)
    assert ran is not None and ran[1] is not None
    return ran[1]


def _server_vectors(conn: psycopg.Connection, version: int, audio: np.ndarray) -> np.ndarray:
    found = q.artifact(conn, version)
    assert found is not None
    return fleet_embedding.embed(fleet_embedding.load(found[0]), windows_16k(audio, SR))


def _fleet_sensor(admin: TestClient, kind: str) -> tuple[str, str]:
    machine = admin.post("/v1/machines", json={"name": "blower", "kind": "fan"}).json()["id"]
    created = admin.post(f"/v1/machines/{machine}/sensors",
                         json={"name": "mic", "embedding": {"kind": kind}})
    assert created.status_code == 201, created.text
    assert created.json()["embedding"] == {"kind": kind, "dim": 64, "builtin": True}
    return machine, created.json()["id"]


def test_fleet_kind_windows_detector_and_reembedding(
        admin: TestClient, settings: Settings, pool: ConnectionPool,
        conn: psycopg.Connection) -> None:
    _, after = fleet_with_audio(admin)
    early = admin.post("/v1/machines", json={"name": "early", "kind": "fan"}).json()["id"]
    problem(admin.post(f"/v1/machines/{early}/sensors",
                       json={"name": "mic", "embedding": {"kind": "fleet-v1"}}), 422,
            "fleet-v1", "has not been trained", "POST /v1/fleet/embedding/train")
    assert _new_version(admin, settings, pool) == 1
    machine, sensor = _fleet_sensor(admin, "fleet-v1")

    normal = np.concatenate([load_16k(p) for p in
                             esc10_clips("sea_waves")[:8] + esc10_clips("rain")[:4]])
    start = after + timedelta(seconds=60)
    stored = upload(admin, sensor, wav(normal), start, baseline="true")
    assert stored["windows"] == 60  # the detector needs 50
    times, values = read_windows(conn, UUID(sensor), start, start + timedelta(seconds=60), 64)
    quantised = decoded(wav(normal))
    assert len(times) == 60
    np.testing.assert_allclose(values, _server_vectors(conn, 1, quantised), atol=1e-5)

    job = train(admin, settings, pool, machine, target="detector")
    assert job["state"] == "succeeded", job["error"]
    model = admin.get(f"/v1/machines/{machine}/models/1").json()
    assert (model["embedding_kind"], model["dim"]) == ("fleet-v1", 64)
    score_all(pool)
    assert count(conn, SCORES, UUID(sensor), 1) == 60

    # Version 2 exists: the sensor stays on fleet-v1 and its detector keeps scoring.
    assert _new_version(admin, settings, pool) == 2
    later = start + timedelta(seconds=120)
    new = upload(admin, sensor, wav(load_16k(esc10_clips("chainsaw")[4])), later)["windows"]
    score_all(pool)
    assert new >= 4 and count(conn, SCORES, UUID(sensor), 1) == 60 + new

    # Re-embedded to fleet-v2 (same dim: no data deleted), the old detector no longer
    # applies; retrained, the new one scores the new kind.
    queued = admin.post(f"/v1/sensors/{sensor}/reembed", json={
        "start": start.isoformat(), "end": (later + timedelta(seconds=5)).isoformat(),
        "kind": "fleet-v2"})
    assert queued.status_code == 202, queued.text
    with pool.connection() as c, c.transaction():
        claimed = reembed.claim(c, stale_s=60)
    assert claimed is not None
    reembed_worker.process(pool, claimed, threading.Event())
    done = admin.get(f"/v1/sensors/{sensor}/reembed/{queued.json()['id']}").json()
    assert done["state"] == "succeeded" and done["windows"] == 60 + new, done
    _, values = read_windows(conn, UUID(sensor), start, start + timedelta(seconds=60), 64)
    np.testing.assert_allclose(values, _server_vectors(conn, 2, quantised), atol=1e-5)
    score_all(pool)
    assert count(conn, SCORES, UUID(sensor), 1) == 60 + new  # v1 detector: not on v2
    job = train(admin, settings, pool, machine, target="detector")
    assert job["state"] == "succeeded", job["error"]
    assert admin.get(f"/v1/machines/{machine}/models/2").json()["embedding_kind"] == "fleet-v2"
    upload(admin, sensor, wav(load_16k(esc10_clips("chainsaw")[5])), later + timedelta(seconds=60))
    score_all(pool)
    assert count(conn, SCORES, UUID(sensor), 2) >= 5


def decoded(body: bytes) -> np.ndarray:
    """What the server decodes from a 16-bit WAV upload."""
    samples, _ = sf.read(io.BytesIO(body), dtype="float32", always_2d=True)
    return np.asarray(samples)


def test_audio_must_agree_with_the_fleet_windows_a_sensor_sent(
        admin: TestClient, settings: Settings, pool: ConnectionPool,
        conn: psycopg.Connection) -> None:
    """A device that embeds with fleet-v1 and sends its audio afterwards: vectors equal to
    the server's are accepted; vectors off by 0.01 (a broken device: other audio moves
    them by about that much) are refused, where logmel-v1's 0.1 dB would let them pass."""
    _, after = fleet_with_audio(admin, clips=1)
    assert _new_version(admin, settings, pool) == 1
    _, sensor = _fleet_sensor(admin, "fleet-v1")
    body = wav(load_16k(esc10_clips("sea_waves")[0]))
    exact = _server_vectors(conn, 1, decoded(body))
    for offset, start, status in ((0.0, after, 200), (0.01, after + timedelta(minutes=5), 422)):
        t0 = round(start.timestamp() * 1e6)
        times = t0 + 1_000_000 * np.arange(len(exact), dtype=np.int64)
        sent = admin.post(f"/v1/sensors/{sensor}/embeddings",
                          content=windows_json(times, exact + offset),
                          headers={"content-type": "application/json"})
        assert sent.status_code == 200, sent.text
        answer = admin.post(f"/v1/sensors/{sensor}/audio", content=body,
                            params={"start": start.isoformat()},
                            headers={"content-type": "audio/wav"})
        assert answer.status_code == status, answer.text
    assert answer.json()["detail"].endswith("nothing was stored")
    assert "more than 0.005 allowed" in answer.json()["detail"]
