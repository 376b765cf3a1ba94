from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import numpy as np
import psycopg
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from ingest.features import embed
from ingest.store import read_windows
from service.app import create_app
from service.settings import Settings
from tests.conftest import ADMIN_KEY, DATA_DIR

BLDC_44K_STEREO = "bldc/bldc_motor__healthy_M1_1400rpm.wav"
BLDC_16K_STEREO = "bldc/bldc_motor__healthy_M1_1450rpm.wav"
ESC10_OGG = "esc10/esc10__baby_cry__1-187207-A.ogg"
PROBLEM = "application/problem+json"


@pytest.fixture
def machine_id(admin: TestClient) -> str:
    return str(admin.post("/v1/machines", json={"name": "m", "kind": "bldc"}).json()["id"])


@pytest.fixture
def sensor(admin: TestClient, machine_id: str) -> dict:
    response = admin.post(f"/v1/machines/{machine_id}/sensors",
                          json={"name": "mic", "embedding": {"kind": "logmel-v1"}})
    assert response.status_code == 201, response.text
    return dict(response.json())


def upload(client: TestClient, sensor_id: str, body: bytes, start: datetime | str,
           content_type: str = "audio/wav", **params: object) -> httpx.Response:
    when = start if isinstance(start, str) else start.isoformat()
    return client.post(f"/v1/sensors/{sensor_id}/audio", content=body,
                       params={"start": when, **params},
                       headers={"content-type": content_type})


def hour_ago() -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # table: test constants
    assert row is not None
    return int(row[0])


def local_embedding(data: bytes) -> np.ndarray:
    samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return embed(samples, rate)


def flac_of(path: str) -> bytes:
    samples, rate = sf.read(DATA_DIR / path, dtype="int16", always_2d=True)
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC")
    return buffer.getvalue()


CLIPS = [  # (name, body, content type): mixed rates, channel counts and containers
    ("bldc 44.1 kHz stereo wav", (DATA_DIR / BLDC_44K_STEREO).read_bytes(), "audio/wav"),
    ("bldc 16 kHz stereo wav", (DATA_DIR / BLDC_16K_STEREO).read_bytes(), "audio/x-wav"),
    ("esc-10 44.1 kHz mono ogg", (DATA_DIR / ESC10_OGG).read_bytes(), "audio/ogg"),
    ("bldc 16 kHz stereo flac", flac_of(BLDC_16K_STEREO), "audio/flac"),
]


def test_server_embeddings_equal_local_ones(admin: TestClient, conn: psycopg.Connection,
                                            sensor: dict) -> None:
    start = hour_ago()
    for name, body, content_type in CLIPS:
        expected = local_embedding(body)
        response = upload(admin, sensor["id"], body, start, content_type)
        assert response.status_code == 200, (name, response.text)
        n = len(expected)
        end = start + timedelta(seconds=n)
        answer = response.json()
        kept = answer.pop("audio")
        assert answer == {"accepted": n, "duplicates": 0, "windows": n,
                          "start": start.isoformat().replace("+00:00", "Z"),
                          "end": end.isoformat().replace("+00:00", "Z")}, name
        assert (kept["policy"], kept["codec"], kept["chunks"]) == ("keep", "flac", 1), name
        times, values = read_windows(conn, UUID(sensor["id"]), start, end, 128)
        assert times == [start + timedelta(seconds=k) for k in range(n)], name
        np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-5, err_msg=name)
        start = end + timedelta(seconds=30)
    assert count(conn, "embeddings") == 10 + 10 + 5 + 10


def test_baseline_and_label_in_the_same_upload(admin: TestClient, conn: psycopg.Connection,
                                               sensor: dict, machine_id: str) -> None:
    body = CLIPS[1][1]
    start = hour_ago() + timedelta(microseconds=250_000)
    response = upload(admin, sensor["id"], body, start.isoformat(), baseline="true",
                      label="healthy")
    assert response.status_code == 200, response.text
    end = start + timedelta(seconds=10)
    assert conn.execute("SELECT machine_id::text, start_at, end_at, source FROM baselines"
                        ).fetchall() == [(machine_id, start, end, "audio-upload")]
    assert conn.execute("SELECT machine_id::text, start_at, end_at, label FROM labels"
                        ).fetchall() == [(machine_id, start, end, "healthy")]
    retry = upload(admin, sensor["id"], body, start, baseline="true", label="healthy")
    assert retry.json()["accepted"] == 0 and retry.json()["duplicates"] == 10
    assert (count(conn, "baselines"), count(conn, "labels")) == (1, 1)


def _short_wav() -> bytes:
    samples, rate = sf.read(DATA_DIR / BLDC_16K_STEREO, dtype="int16", always_2d=True)
    buffer = io.BytesIO()
    sf.write(buffer, samples[: rate // 2], rate, format="WAV")
    return buffer.getvalue()


def test_bad_audio_is_rejected_and_nothing_stored(admin: TestClient, conn: psycopg.Connection,
                                                  sensor: dict) -> None:
    wav = CLIPS[0][1]
    cases = [
        ("corrupt", b"RIFF" + bytes(range(256)) * 40, "audio/wav", 422, "not readable"),
        ("text", b"hello, this is not audio" * 100, "application/octet-stream", 422,
         "not readable"),
        ("truncated", wav[: len(wav) // 2], "audio/wav", 422, "truncated"),
        ("empty", b"", "audio/wav", 422, "empty"),
        ("too short", _short_wav(), "audio/wav", 422, "at least 1 s"),
        ("wrong media type", wav, "text/plain", 415, "not accepted"),
    ]
    for case, body, content_type, status, words in cases:
        response = upload(admin, sensor["id"], body, hour_ago(), content_type,
                          baseline="true", label="x")
        assert response.status_code == status, (case, response.text)
        assert response.headers["content-type"] == PROBLEM, case
        assert words in response.json()["detail"], (case, response.json())
    for start in ("2026-11-25T10:00:00", "yesterday"):
        assert upload(admin, sensor["id"], wav, start).status_code == 422, start
    future = upload(admin, sensor["id"], wav, datetime.now(UTC) + timedelta(hours=1))
    assert future.status_code == 422 and "after the server time" in future.json()["detail"]
    assert (count(conn, "embeddings"), count(conn, "baselines"), count(conn, "labels")) == \
        (0, 0, 0)


def test_over_long_audio_is_refused(settings: Settings, conn: psycopg.Connection,
                                    admin: TestClient, sensor: dict) -> None:
    short_limit = settings.model_copy(update={"max_audio_seconds": 6.0})
    with TestClient(create_app(short_limit), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        response = upload(client, sensor["id"], CLIPS[0][1], hour_ago())
        assert response.status_code == 422
        assert "at most 6 s" in response.json()["detail"]
        fits = upload(client, sensor["id"], CLIPS[2][1], hour_ago(), "application/ogg")
        assert fits.status_code == 200 and fits.json()["windows"] == 5
    assert count(conn, "embeddings") == 5


def test_custom_kind_audio_is_kept_without_windows_and_needs_a_token(
        admin: TestClient, machine_id: str, sensor: dict, conn: psycopg.Connection) -> None:
    custom = admin.post(f"/v1/machines/{machine_id}/sensors",
                        json={"name": "vec", "embedding": {"kind": "vendor-x", "dim": 128}})
    kept = upload(admin, custom.json()["id"], CLIPS[2][1], hour_ago(), "audio/ogg")
    assert kept.status_code == 200, kept.text
    assert (kept.json()["windows"], kept.json()["audio"]["chunks"]) == (0, 1)
    assert (count(conn, "embeddings"), count(conn, "audio_chunks")) == (0, 1)
    body = CLIPS[2][1]
    reader = admin.post("/v1/api-keys", json={"name": "r", "role": "read"}).json()["key"]
    for token, status in ((custom.json()["ingest_token"], 403), (reader, 403),
                          ("est_nope", 401), (sensor["ingest_token"], 200)):
        response = admin.post(f"/v1/sensors/{sensor['id']}/audio", content=body,
                              params={"start": hour_ago().isoformat()},
                              headers={"content-type": "audio/ogg",
                                       "authorization": f"Bearer {token}"})
        assert response.status_code == status, (token, response.text)
    assert count(conn, "embeddings") == 5
