"""Re-embedding a sensor's history from its stored audio: a job through the API, run by
the worker loop's functions on the real database; it switches kinds, resumes after the
last committed piece, and refuses a second job for the same sensor."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from uuid import UUID

import numpy as np
import psycopg
import soundfile as sf
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from ingest.features import LOGMEL_V1_H250, embed
from ingest.store import read_windows
from service import reembed as worker
from service.queries import reembed
from tests.conftest import DATA_DIR

CLIP = DATA_DIR / "bldc/bldc_motor__healthy_M1_1450rpm.wav"  # 16 kHz stereo, 10.265 s


def _sensor_with_audio(admin: TestClient) -> tuple[str, datetime]:
    machine = admin.post("/v1/machines", json={"name": "m", "kind": "bldc"}).json()["id"]
    sensor = admin.post(f"/v1/machines/{machine}/sensors", json={
        "name": "mic", "embedding": {"kind": "logmel-v1"}}).json()["id"]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    stored = admin.post(f"/v1/sensors/{sensor}/audio", content=CLIP.read_bytes(),
                        params={"start": start.isoformat()},
                        headers={"content-type": "audio/wav"})
    assert stored.status_code == 200, stored.text
    return sensor, start


def _run_queued(pool: ConnectionPool) -> None:
    with pool.connection() as conn, conn.transaction():
        job = reembed.claim(conn, stale_s=60)
    assert job is not None
    worker.process(pool, job, threading.Event())


def test_history_is_recomputed_with_a_new_kind(admin: TestClient, pool: ConnectionPool,
                                               conn: psycopg.Connection) -> None:
    sensor, start = _sensor_with_audio(admin)
    queued = admin.post(f"/v1/sensors/{sensor}/reembed", json={
        "start": start.isoformat(), "end": (start + timedelta(seconds=30)).isoformat(),
        "kind": LOGMEL_V1_H250})
    assert queued.status_code == 202, queued.text
    assert admin.get(f"/v1/sensors/{sensor}").json()["embedding"]["kind"] == LOGMEL_V1_H250
    again = admin.post(f"/v1/sensors/{sensor}/reembed", json={
        "start": start.isoformat(), "end": (start + timedelta(seconds=5)).isoformat()})
    assert again.status_code == 409

    _run_queued(pool)

    job = admin.get(f"/v1/sensors/{sensor}/reembed/{queued.json()['id']}").json()
    samples, rate = sf.read(CLIP, dtype="float32", always_2d=True)
    expected = embed(samples, rate, LOGMEL_V1_H250)  # 37 windows: 0.25 s hops
    assert (job["state"], job["windows"], job["error"]) == ("succeeded", len(expected), None)
    times, values = read_windows(conn, UUID(sensor), start, start + timedelta(seconds=30), 128)
    assert times == [start + timedelta(seconds=0.25 * k) for k in range(len(expected))]
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-4)


def test_a_job_resumes_after_its_last_piece(admin: TestClient, pool: ConnectionPool,
                                            conn: psycopg.Connection) -> None:
    sensor, start = _sensor_with_audio(admin)
    conn.execute("DELETE FROM embeddings WHERE sensor_id = %s", (sensor,))
    conn.commit()
    queued = admin.post(f"/v1/sensors/{sensor}/reembed", json={
        "start": start.isoformat(), "end": (start + timedelta(seconds=8)).isoformat()})
    assert queued.status_code == 202, queued.text
    # As if a worker had committed the first 5 windows, then died.
    conn.execute("UPDATE reembed_jobs SET done_until = %s", (start + timedelta(seconds=5),))
    conn.commit()
    _run_queued(pool)
    times, _ = read_windows(conn, UUID(sensor), start, start + timedelta(seconds=30), 128)
    assert times == [start + timedelta(seconds=k) for k in range(5, 8)]
    job = admin.get(f"/v1/sensors/{sensor}/reembed/{queued.json()['id']}").json()
    assert (job["state"], job["windows"]) == ("succeeded", 3)


def test_bad_requests_are_refused(admin: TestClient) -> None:
    sensor, start = _sensor_with_audio(admin)
    span = {"start": start.isoformat(), "end": (start - timedelta(seconds=1)).isoformat()}
    assert admin.post(f"/v1/sensors/{sensor}/reembed", json=span).status_code == 422
    unknown = admin.post(f"/v1/sensors/{sensor}/reembed", json={
        "start": start.isoformat(), "end": (start + timedelta(seconds=9)).isoformat(),
        "kind": "openl3"})
    assert unknown.status_code == 422 and "not built-in" in unknown.text
