"""`earshot sensor stream --embedding logmel-gwrp-v1` against the real API (uvicorn
subprocess) and real audio: the client's pooled windows equal the server's from the same
audio (and pass the server's check of the audio sent after them); kinds the client cannot
stream, or that are not the sensor's, are refused."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import numpy as np
import psycopg
import pytest
import soundfile as sf

from ingest.client import SensorClient
from ingest.codec import to_rfc3339
from ingest.features import LOGMEL_GWRP_V1, embed
from ingest.store import read_windows
from service.settings import Settings
from tests.conftest import DATA_DIR
from tests.ingest.sensor_cli import run_cli
from tests.live import ClonedApi, api_on_clone

BLDC_44K = DATA_DIR / "bldc" / "bldc_motor__healthy_M1_1400rpm.wav"  # 10 s, stereo
DIM = 192


@pytest.fixture(scope="module")
def api(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[ClonedApi]:
    with api_on_clone(base_settings, tmp_path_factory.mktemp("api")) as live:
        yield live


def make_sensor(admin: httpx.Client, kind: str = LOGMEL_GWRP_V1) -> tuple[str, str]:
    """(sensor id, ingest token) of a new machine's sensor of `kind`."""
    machine = admin.post("/v1/machines", json={"name": f"m-{uuid.uuid4().hex[:8]}",
                                               "kind": "bldc-motor"}).json()["id"]
    sensor = admin.post(f"/v1/machines/{machine}/sensors",
                        json={"name": "mic", "embedding": {"kind": kind}})
    assert sensor.status_code == 201, sensor.text
    assert sensor.json()["embedding"] == {"kind": kind, "dim": DIM, "builtin": True}
    return sensor.json()["id"], sensor.json()["ingest_token"]


def stored(db: psycopg.Connection, sensor: str) -> tuple[list[datetime], np.ndarray]:
    return read_windows(db, UUID(sensor), datetime(1970, 1, 1, tzinfo=UTC),
                        datetime.now(UTC) + timedelta(days=1), DIM)


def test_streamed_pooled_windows_equal_the_servers_from_the_same_audio(
        api: ClonedApi, capsys: pytest.CaptureFixture[str]) -> None:
    (via_audio, audio_token), (via_stream, token) = make_sensor(api.admin), make_sensor(api.admin)
    start_us = (int(datetime.now(UTC).timestamp()) - 3600) * 1_000_000
    with SensorClient(api.url, UUID(via_audio), audio_token) as client:
        uploaded = client.upload_audio(BLDC_44K.read_bytes(), start_us=start_us,
                                       content_type="audio/wav")
    assert uploaded.windows == uploaded.accepted == 10
    # --send-audio: the server embeds the audio itself and refuses windows that disagree.
    code, out, err = run_cli(capsys, "stream", "--url", api.url, "--sensor-id", via_stream,
                             "--token", token, "--start", to_rfc3339(start_us), "--embedding",
                             LOGMEL_GWRP_V1, "--send-audio", "--quiet", str(BLDC_44K))
    assert code == 0, err
    assert "stream: 10 windows" in out and "accepted 10, duplicates 0" in out
    server_times, server_values = stored(api.db, via_audio)
    client_times, client_values = stored(api.db, via_stream)
    assert client_times == server_times and client_values.shape == (10, DIM)
    np.testing.assert_allclose(client_values, server_values, rtol=1e-5, atol=1e-5)
    samples, sr = sf.read(BLDC_44K, dtype="float32", always_2d=True)
    np.testing.assert_allclose(server_values, embed(samples, sr, LOGMEL_GWRP_V1),
                               rtol=1e-5, atol=1e-5)
    held = api.db.execute("SELECT count(*) FROM audio_chunks WHERE sensor_id = %s",
                          (via_stream,)).fetchone()
    assert held is not None and held[0] >= 1


def test_kinds_the_client_cannot_stream_or_the_sensor_does_not_take_are_refused(
        api: ClonedApi, capsys: pytest.CaptureFixture[str]) -> None:
    sensor, token = make_sensor(api.admin)
    common = ("--url", api.url, "--sensor-id", sensor, "--token", token, "--quiet")
    code, _, err = run_cli(capsys, "stream", *common, "--embedding", "logmel-v1-h250",
                           str(BLDC_44K))
    assert code == 2 and "logmel-v1, logmel-gwrp-v1 or fleet-v<N>" in err
    code, _, err = run_cli(capsys, "stream", *common, str(BLDC_44K))  # logmel-v1: 128-d
    assert code == 1 and "HTTP 422" in err and "embeddings have 192" in err, err
    assert stored(api.db, sensor)[0] == []
