"""The audio store through the API: what an upload keeps under each policy and codec, the
WAV of a range (gaps silent and listed), spectrograms from audio or from windows, the
agreement check between sent windows and their audio, and limits."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import httpx
import numpy as np
import psycopg
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from ingest import codec
from ingest.features import embed
from tests.conftest import DATA_DIR

BLDC_44K_STEREO = DATA_DIR / "bldc/bldc_motor__healthy_M1_1400rpm.wav"
BLDC_16K_STEREO = DATA_DIR / "bldc/bldc_motor__healthy_M1_1450rpm.wav"


def make_sensor(admin: TestClient, **audio: str) -> dict:
    machine = admin.post("/v1/machines", json={"name": "press", "kind": "press"}).json()
    body: dict = {"name": "mic", "embedding": {"kind": "logmel-v1"}}
    if audio:
        body["audio"] = audio
    response = admin.post(f"/v1/machines/{machine['id']}/sensors", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def upload(admin: TestClient, sensor_id: str, body: bytes, start: datetime,
           content_type: str = "audio/wav") -> httpx.Response:
    return admin.post(f"/v1/sensors/{sensor_id}/audio", content=body,
                      params={"start": start.isoformat()},
                      headers={"content-type": content_type})


def read_wav(admin: TestClient, sensor_id: str, start: datetime,
             end: datetime) -> httpx.Response:
    return admin.get(f"/v1/sensors/{sensor_id}/audio",
                     params={"start": start.isoformat(), "end": end.isoformat()})


def minutes_ago(n: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=n)


def held_chunks(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM audio_chunks").fetchone()
    return int(row[0]) if row else -1


def test_flac_keeps_the_samples_rate_and_channels(admin: TestClient) -> None:
    sensor = make_sensor(admin)
    original, rate = sf.read(BLDC_44K_STEREO, dtype="int16", always_2d=True)
    start = minutes_ago(10)
    stored = upload(admin, sensor["id"], BLDC_44K_STEREO.read_bytes(), start)
    assert stored.status_code == 200, stored.text
    assert stored.json()["audio"]["seconds"] == pytest.approx(len(original) / rate, abs=1e-5)

    wav = read_wav(admin, sensor["id"], start, start + timedelta(seconds=10))
    assert wav.status_code == 200 and wav.headers["content-type"] == "audio/wav"
    assert wav.headers["earshot-audio-gaps"] == "none"
    samples, out_rate = sf.read(io.BytesIO(wav.content), dtype="int16", always_2d=True)
    assert (out_rate, samples.shape) == (44100, (441000, 2))
    np.testing.assert_array_equal(samples, original[:441000])  # lossless, bit for bit


def test_gaps_are_silent_and_listed(admin: TestClient) -> None:
    sensor = make_sensor(admin)
    start = minutes_ago(10)
    assert upload(admin, sensor["id"], BLDC_16K_STEREO.read_bytes(), start).status_code == 200
    before = start - timedelta(seconds=2)
    wav = read_wav(admin, sensor["id"], before, start + timedelta(seconds=12))
    assert wav.status_code == 200
    gaps = wav.headers["earshot-audio-gaps"].split(", ")
    assert gaps[0] == f"{before.isoformat()}/{start.isoformat()}"
    assert len(gaps) == 2 and gaps[1].endswith((start + timedelta(seconds=12)).isoformat())
    samples, rate = sf.read(io.BytesIO(wav.content), always_2d=True)
    assert not samples[: 2 * rate].any() and samples[2 * rate: 3 * rate].any()
    held = float(wav.headers["earshot-audio-held-seconds"])
    assert held == pytest.approx(sf.info(BLDC_16K_STEREO).duration, abs=1e-3)


@pytest.mark.parametrize(("codec_name", "rate_kept"), [("vorbis", 44100), ("opus", 48000)])
def test_lossy_codecs_store_less_and_still_play(admin: TestClient, codec_name: str,
                                               rate_kept: int) -> None:
    lossless = make_sensor(admin)
    machine = admin.post("/v1/machines", json={"name": "lossy", "kind": "press"}).json()
    lossy = admin.post(f"/v1/machines/{machine['id']}/sensors", json={
        "name": "mic", "embedding": {"kind": "logmel-v1"}, "audio": {"codec": codec_name}}).json()
    start = minutes_ago(10)
    body = BLDC_44K_STEREO.read_bytes()
    flac_bytes = upload(admin, lossless["id"], body, start).json()["audio"]["bytes"]
    answer = upload(admin, lossy["id"], body, start).json()
    assert answer["audio"]["codec"] == codec_name
    assert answer["audio"]["bytes"] * 3 < flac_bytes
    wav = read_wav(admin, lossy["id"], start, start + timedelta(seconds=10))
    samples, rate = sf.read(io.BytesIO(wav.content), always_2d=True)
    assert rate == rate_kept and samples.shape == (rate * 10, 2)
    original, _ = sf.read(BLDC_44K_STEREO, always_2d=True)
    assert np.std(samples) == pytest.approx(np.std(original), rel=0.2)


def test_policy_off_keeps_windows_only_and_can_change(admin: TestClient,
                                                     conn: psycopg.Connection) -> None:
    sensor = make_sensor(admin, policy="off")
    assert sensor["audio"] == {"policy": "off", "codec": "flac"}
    start = minutes_ago(10)
    answer = upload(admin, sensor["id"], BLDC_16K_STEREO.read_bytes(), start).json()
    assert (answer["accepted"], answer["audio"]["chunks"]) == (10, 0)
    assert read_wav(admin, sensor["id"], start, start + timedelta(seconds=5)).status_code == 404
    assert held_chunks(conn) == 0
    patched = admin.patch(f"/v1/sensors/{sensor['id']}", json={"audio": {"policy": "keep"}})
    assert patched.json()["audio"] == {"policy": "keep", "codec": "flac"}
    again = upload(admin, sensor["id"], BLDC_16K_STEREO.read_bytes(), start).json()
    assert (again["duplicates"], again["audio"]["chunks"]) == (10, 1)  # audio added later


def test_a_retry_stores_the_audio_once(admin: TestClient, conn: psycopg.Connection) -> None:
    sensor = make_sensor(admin)
    start = minutes_ago(10)
    body = BLDC_16K_STEREO.read_bytes()
    first, retry = (upload(admin, sensor["id"], body, start).json() for _ in range(2))
    assert (first["audio"]["chunks"], retry["audio"]["chunks"]) == (1, 0)
    assert retry["audio"]["duplicate_chunks"] == 1 and held_chunks(conn) == 1


def _send_windows(admin: TestClient, sensor_id: str, start: datetime,
                  values: np.ndarray) -> None:
    start_us = round(start.timestamp() * 1e6)
    times = start_us + 1_000_000 * np.arange(len(values), dtype=np.int64)
    sent = admin.post(f"/v1/sensors/{sensor_id}/embeddings",
                      content=codec.encode_binary(times, values.astype(np.float32)),
                      headers={"content-type": codec.BINARY_TYPE})
    assert sent.status_code == 200, sent.text


def test_sent_windows_must_agree_with_their_audio(admin: TestClient,
                                                  conn: psycopg.Connection) -> None:
    sensor = make_sensor(admin)
    samples, rate = sf.read(BLDC_16K_STEREO, dtype="float32", always_2d=True)
    right, wrong = minutes_ago(20), minutes_ago(10)
    _send_windows(admin, sensor["id"], right, embed(samples, rate))
    agreed = upload(admin, sensor["id"], BLDC_16K_STEREO.read_bytes(), right)
    assert agreed.status_code == 200, agreed.text
    assert (agreed.json()["duplicates"], agreed.json()["audio"]["chunks"]) == (10, 1)

    _send_windows(admin, sensor["id"], wrong, embed(samples[::-1].copy(), rate))
    refused = upload(admin, sensor["id"], BLDC_16K_STEREO.read_bytes(), wrong)
    assert refused.status_code == 422
    assert "differs from the one computed from this audio" in refused.json()["detail"]
    assert held_chunks(conn) == 1  # nothing of the refused upload


def test_two_hours_of_audio_are_refused_whole(admin: TestClient,
                                              conn: psycopg.Connection) -> None:
    sensor = make_sensor(admin)
    buffer = io.BytesIO()  # silence compresses to almost nothing: under the body limit
    sf.write(buffer, np.zeros((7200 * 8000, 1), np.int16), 8000, format="FLAC")
    refused = upload(admin, sensor["id"], buffer.getvalue(), minutes_ago(180), "audio/flac")
    assert refused.status_code == 422 and "at most 3600 s" in refused.json()["detail"]
    row = conn.execute("SELECT (SELECT count(*) FROM embeddings), "
                       "(SELECT count(*) FROM audio_chunks)").fetchone()
    assert row == (0, 0)


def test_spectrogram_from_audio_and_from_windows(admin: TestClient) -> None:
    with_audio, without = make_sensor(admin), None
    machine = admin.post("/v1/machines", json={"name": "fan", "kind": "fan"}).json()
    without = admin.post(f"/v1/machines/{machine['id']}/sensors", json={
        "name": "mic", "embedding": {"kind": "logmel-v1"}, "audio": {"policy": "off"}}).json()
    start = minutes_ago(10)
    for sensor in (with_audio, without):
        assert upload(admin, sensor["id"], BLDC_16K_STEREO.read_bytes(), start).status_code == 200
    span = {"start": start.isoformat(), "end": (start + timedelta(seconds=10)).isoformat()}
    json_accept = {"accept": "application/json"}

    fine = admin.get(f"/v1/machines/{with_audio['machine_id']}/spectrogram", params=span,
                     headers=json_accept).json()
    assert fine["source"] == "audio" and fine["sensor_id"] == with_audio["id"]
    assert len(fine["values_db"]) == len(fine["frequencies_hz"]) == 96
    assert len(fine["times_s"]) == len(fine["values_db"][0]) > 300  # 32 ms hops
    assert fine["frequencies_hz"][-1] <= 8000 and fine["times_s"][-1] < 10

    coarse = admin.get(f"/v1/machines/{machine['id']}/spectrogram", params=span,
                       headers=json_accept).json()
    assert coarse["source"] == "embeddings" and len(coarse["times_s"]) == 10
    assert len(coarse["values_db"]) == 64 and coarse["times_s"][0] == 0.5

    picture = admin.get(f"/v1/machines/{machine['id']}/spectrogram", params=span)
    assert picture.headers["content-type"] == "image/png"
    assert picture.headers["earshot-spectrogram-source"] == "embeddings"
    assert picture.content.startswith(b"\x89PNG\r\n\x1a\n")
