"""The sensor client embeds with the fleet embedding on the device: `earshot sensor stream
--embedding fleet-v<N>` downloads version N's ONNX model from a live API, verifies its
SHA-256 and streams onnxruntime's vectors, which equal the server's torch vectors of the
same real audio; a model whose checksum differs from the pinned one is not used."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import numpy as np
import psycopg
import pytest
import soundfile as sf

from detectors import fleet_embedding
from ingest.client_cli import main as client_main
from ingest.features import windows_16k
from ingest.fleet_onnx import OnnxEmbedder, download
from ingest.store import read_windows
from service.db import make_pool
from service.fleet import train as fleet_train
from service.queries import fleet_embeddings as q
from service.settings import Settings
from tests.conftest import DATA_DIR
from tests.live import api_on_clone

ESC10 = DATA_DIR / "esc10"
TRAIN_CLIPS = {"pump": ["esc10__chainsaw__1-19898-A.ogg", "esc10__chainsaw__1-19898-B.ogg"],
               "fan": ["esc10__rooster__1-26806-A.ogg", "esc10__rooster__1-27724-A.ogg"]}
STREAMED = ESC10 / "esc10__sea_waves__1-28135-A.ogg"  # 44.1 kHz: the client resamples


@dataclass(frozen=True)
class Fleet:
    url: str
    settings: Settings
    db: psycopg.Connection
    admin: httpx.Client


def _sensor(admin: httpx.Client, kind: str) -> tuple[str, str]:
    machine = admin.post("/v1/machines", json={"name": f"m-{kind}-{datetime.now(UTC).timestamp()}",
                                               "kind": "fan"}).json()["id"]
    sensor = admin.post(f"/v1/machines/{machine}/sensors",
                        json={"name": "mic", "embedding": {"kind": kind}})
    assert sensor.status_code == 201, sensor.text
    return sensor.json()["id"], sensor.json()["ingest_token"]


def _upload(admin: httpx.Client, sensor: str, path: Path, start: datetime) -> None:
    stored = admin.post(f"/v1/sensors/{sensor}/audio", content=path.read_bytes(),
                        params={"start": start.isoformat()},
                        headers={"content-type": "audio/ogg"})
    assert stored.status_code == 200, stored.text


@pytest.fixture(scope="module")
def fleet(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """A live API whose database holds fleet embedding version 1, trained (in this process,
    as a worker would) on real ESC-10 audio of two machines."""
    with api_on_clone(base_settings, tmp_path_factory.mktemp("api"), timeout_s=60) as api, \
            make_pool(api.settings) as pool:
        at = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        for clips in TRAIN_CLIPS.values():
            sensor, _ = _sensor(api.admin, "logmel-v1")
            for clip in clips:
                _upload(api.admin, sensor, ESC10 / clip, at)
                at += timedelta(seconds=10)
        queued = api.admin.post("/v1/fleet/embedding/train",
                                json={"max_epochs": 2, "max_windows": 100})
        assert queued.status_code == 202, queued.text
        ran = fleet_train.run_one(api.settings, pool)
        assert ran is not None and ran[1] == 1
        yield Fleet(api.url, api.settings, api.db, api.admin)


def _stored(conn: psycopg.Connection, sensor: str) -> tuple[list[datetime], np.ndarray]:
    return read_windows(conn, UUID(sensor), datetime(1970, 1, 1, tzinfo=UTC),
                        datetime.now(UTC) + timedelta(days=1), 64)


def test_onnx_on_the_device_equals_torch_on_the_server(fleet: Fleet) -> None:
    _, token = _sensor(fleet.admin, "fleet-v1")
    blob = download(fleet.url, token, "fleet-v1")
    found = q.artifact(fleet.db, 1)
    assert found is not None
    samples, rate = sf.read(STREAMED, dtype="float32", always_2d=True)
    windows = windows_16k(samples, rate)
    torch_vectors = fleet_embedding.embed(fleet_embedding.load(found[0]), windows)
    onnx_vectors = OnnxEmbedder(blob).embed(windows)
    assert onnx_vectors.shape == torch_vectors.shape == (5, 64)
    print(f"onnx vs torch: max |diff| {np.abs(onnx_vectors - torch_vectors).max():.2e}, "
          f"max |value| {np.abs(torch_vectors).max():.3f}")
    np.testing.assert_allclose(onnx_vectors, torch_vectors, rtol=1e-4, atol=1e-5)


def test_stream_with_the_fleet_embedding_matches_the_servers_windows(
        fleet: Fleet, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    via_audio, _ = _sensor(fleet.admin, "fleet-v1")
    via_stream, token = _sensor(fleet.admin, "fleet-v1")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    _upload(fleet.admin, via_audio, STREAMED, start)
    capsys.readouterr()
    pinned = hashlib.sha256(download(fleet.url, token, "fleet-v1")).hexdigest()
    client_main(["stream", "--url", fleet.url, "--sensor-id", via_stream, "--token", token,
                 "--start", start.isoformat(), "--embedding", "fleet-v1", "--onnx-sha256",
                 pinned, "--onnx-cache", str(tmp_path), "--quiet", str(STREAMED)])
    out, err = capsys.readouterr()
    assert "stream: 5 windows" in out and "accepted 5" in out, err
    assert "fleet-v1 model verified" in err
    assert (tmp_path / "fleet-v1.onnx").is_file()
    server_times, server_values = _stored(fleet.db, via_audio)
    client_times, client_values = _stored(fleet.db, via_stream)
    assert client_times == server_times and len(client_times) == 5
    # The client resamples as a stream (soxr), the server the whole file: equal to ~1e-4.
    print(f"streamed onnx vs server torch: max |diff| "
          f"{np.abs(client_values - server_values).max():.2e}")
    np.testing.assert_allclose(client_values, server_values, rtol=1e-3, atol=1e-4)


def test_a_model_that_is_not_the_pinned_one_is_refused(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    sensor, token = _sensor(fleet.admin, "fleet-v1")
    with pytest.raises(SystemExit) as exited:
        client_main(["stream", "--url", fleet.url, "--sensor-id", sensor, "--token", token,
                     "--embedding", "fleet-v1", "--onnx-sha256", "0" * 64, "--quiet",
                     str(STREAMED)])
    assert exited.value.code == 2
    assert "not used" in capsys.readouterr().err
    assert _stored(fleet.db, sensor)[0] == []
    with pytest.raises(SystemExit) as exited:
        client_main(["stream", "--url", fleet.url, "--sensor-id", sensor, "--token", token,
                     "--embedding", "fleet-v9", "--quiet", str(STREAMED)])
    assert exited.value.code == 2 and "HTTP 404" in capsys.readouterr().err
