"""The sensor client against the real API (uvicorn subprocess), the real database and real
recordings: `earshot sensor stream|upload` as a subprocess, `SensorClient` in-process."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import httpx
import numpy as np
import psycopg
import pytest
import soundfile as sf

from ingest.audio_shipper import AudioShipper
from ingest.client import (
    BrokerRefusedError,
    MqttSender,
    RejectedError,
    RetryPolicy,
    SendResult,
    SensorClient,
    retry_after_seconds,
)
from ingest.codec import to_rfc3339
from ingest.features import embed
from ingest.playback import back_to_back, find_recordings
from ingest.sensor_replay import stream
from ingest.store import read_windows
from service.db import make_pool
from service.mqtt_bridge import Bridge
from service.settings import Settings
from tests.conftest import DATA_DIR
from tests.ingest.sensor_cli import run_cli
from tests.live import ROOT, ClonedApi, LiveApi, Mosquitto, api_on_clone, wait_until

BLDC_44K = DATA_DIR / "bldc" / "bldc_motor__healthy_M1_1400rpm.wav"
BLDC_16K = DATA_DIR / "bldc" / "bldc_motor__healthy_M1_1450rpm.wav"
ESC10_OGG = DATA_DIR / "esc10" / "esc10__baby_cry__1-187207-A.ogg"
DIM = 128
CLI_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Sensor:
    id: UUID
    machine_id: UUID
    token: str


@pytest.fixture(scope="module")
def shared(base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[ClonedApi]:
    """One API process and database for the tests that need no special server."""
    with api_on_clone(base_settings, tmp_path_factory.mktemp("api")) as api:
        yield api


def make_sensor(admin: httpx.Client) -> Sensor:
    """A machine and a logmel-v1 sensor through the registry API."""
    machine = admin.post("/v1/machines", json={"name": f"m-{uuid.uuid4().hex[:8]}",
                                               "kind": "bldc-motor"})
    assert machine.status_code == 201, machine.text
    sensor = admin.post(f"/v1/machines/{machine.json()['id']}/sensors",
                        json={"name": "mic", "embedding": {"kind": "logmel-v1"}})
    assert sensor.status_code == 201, sensor.text
    body = sensor.json()
    return Sensor(UUID(body["id"]), UUID(machine.json()["id"]), body["ingest_token"])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three real recordings: 44.1 kHz stereo WAV, 16 kHz stereo WAV, 44.1 kHz mono Ogg."""
    target = tmp_path / "recordings"
    target.mkdir()
    for i, source in enumerate((BLDC_44K, BLDC_16K, ESC10_OGG)):
        shutil.copy(source, target / f"{i}_{source.name}")
    return target


def expected_windows(folder: Path, start_us: int) -> tuple[np.ndarray, np.ndarray]:
    """What the spec says: each file embedded whole, files back to back from start_us."""
    times, values, t = [], [], start_us
    for path in sorted(folder.iterdir()):
        samples, sr = sf.read(path, dtype="float32", always_2d=True)
        vectors = embed(samples, sr)
        times.append(t + np.arange(len(vectors), dtype=np.int64) * 1_000_000)
        values.append(vectors)
        t += round(samples.shape[0] * 1_000_000 / sr)
    return np.concatenate(times), np.concatenate(values)


def stored(conn: psycopg.Connection, sensor_id: UUID) -> tuple[np.ndarray, np.ndarray]:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    times, values = read_windows(conn, sensor_id, epoch, datetime.now(UTC) + timedelta(1), DIM)
    return np.array([(t - epoch) // timedelta(microseconds=1) for t in times]), values


def accepted_total(conn: psycopg.Connection, sensor_id: UUID) -> int:
    row = conn.execute("SELECT coalesce(sum(n), 0) FROM ingest_batches WHERE sensor_id = %s",
                       (sensor_id,)).fetchone()
    return int(row[0]) if row else 0


def start_us() -> int:
    return (int(time.time()) - 3600) * 1_000_000


def conditions(conn: psycopg.Connection, machine_id: UUID) -> list[tuple[str, int, int]]:
    """(name, start µs, end µs) of the machine's sensor-declared condition ranges."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rows = conn.execute("SELECT name, start_at, end_at FROM machine_conditions WHERE "
                        "machine_id = %s AND source = 'sensor' ORDER BY start_at",
                        (machine_id,)).fetchall()
    one = timedelta(microseconds=1)
    return [(name, (a - epoch) // one, (b - epoch) // one) for name, a, b in rows]


def cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "service.cli", "sensor", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the client did not finish: {err[-2000:]}")
    return proc.returncode, out, err


def test_upload_folder_as_baseline_stores_windows_and_baselines(
        shared: ClonedApi, folder: Path) -> None:
    sensor = make_sensor(shared.admin)
    start = start_us()
    code, out, err = finish(cli("upload", "--url", shared.url, "--sensor-id", str(sensor.id),
                                "--token", sensor.token, "--start", to_rfc3339(start),
                                "--baseline", "--condition", "1800rpm", str(folder)))
    assert code == 0, err
    times, values = expected_windows(folder, start)
    assert len(times) == 10 + 10 + 5
    assert f"upload: {len(times)} windows" in out and f"accepted {len(times)}" in out
    got_times, got_values = stored(shared.db, sensor.id)
    np.testing.assert_array_equal(got_times, times)
    np.testing.assert_allclose(got_values, values, rtol=1e-5, atol=1e-5)
    rows = shared.db.execute("SELECT start_at, end_at FROM baselines WHERE machine_id = %s "
                             "ORDER BY start_at", (sensor.machine_id,)).fetchall()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    file_starts = [t for _, t in back_to_back(find_recordings(folder), start)]
    assert file_starts[1] - file_starts[0] == round(448027 * 1e6 / 44100)  # exact durations
    assert [(r[0] - epoch) // timedelta(microseconds=1) for r in rows] == file_starts
    assert [(r[1] - r[0]).total_seconds() for r in rows] == [10.0, 10.0, 5.0]
    conditions = shared.db.execute(
        "SELECT start_at, end_at, name, source FROM machine_conditions WHERE machine_id = %s "
        "ORDER BY start_at", (sensor.machine_id,)).fetchall()
    assert [(c[0], c[1]) for c in conditions] == [(r[0], r[1]) for r in rows]
    assert {(c[2], c[3]) for c in conditions} == {("1800rpm", "audio-upload")}


def test_stream_cli_windows_equal_the_servers_audio_windows(
        shared: ClonedApi, capsys: pytest.CaptureFixture[str]) -> None:
    via_audio, via_stream = make_sensor(shared.admin), make_sensor(shared.admin)
    start = start_us()
    with SensorClient(shared.url, via_audio.id, via_audio.token) as client:
        # 44.1 kHz stereo: the client's downmix and streaming resampler are checked too.
        uploaded = client.upload_audio(BLDC_44K.read_bytes(), start_us=start,
                                       content_type="audio/wav")
    code, out, err = run_cli(capsys, "stream", "--url", shared.url, "--sensor-id",
                             str(via_stream.id), "--token", via_stream.token, "--start",
                             to_rfc3339(start), "--batch", "3", "--condition", "1400rpm",
                             str(BLDC_44K))
    assert code == 0, err
    # Four batches in one condition: one range over the window starts.
    assert conditions(shared.db, via_stream.machine_id) == [
        ("1400rpm", start, start + 9_000_000 + 1)]
    assert conditions(shared.db, via_audio.machine_id) == []
    assert "stream: 10 windows" in out and "accepted 10, duplicates 0" in out
    assert uploaded.windows == uploaded.accepted == 10
    server_times, server_values = stored(shared.db, via_audio.id)
    client_times, client_values = stored(shared.db, via_stream.id)
    np.testing.assert_array_equal(client_times, server_times)
    np.testing.assert_allclose(client_values, server_values, rtol=1e-5, atol=1e-5)
    assert accepted_total(shared.db, via_stream.id) == 10


def test_a_refused_request_is_reported_not_retried(
        shared: ClonedApi, capsys: pytest.CaptureFixture[str]) -> None:
    sensor, other = make_sensor(shared.admin), make_sensor(shared.admin)
    began = time.monotonic()
    code, _, err = run_cli(capsys, "stream", "--url", shared.url, "--sensor-id",
                           str(sensor.id), "--token", other.token, "--quiet", str(BLDC_16K))
    assert code == 1
    assert "HTTP 403" in err and "another sensor" in err
    assert time.monotonic() - began < 30  # no backoff spent on a 4xx
    assert stored(shared.db, sensor.id)[0].size == 0
    with SensorClient(shared.url, sensor.id, sensor.token) as client, \
            pytest.raises(RejectedError) as refused:
        client.send_windows(np.array([start_us()]), np.zeros((1, 64), np.float32))
    assert refused.value.status == 422 and "dim is 64" in refused.value.detail
    assert refused.value.problem["status"] == 422  # the RFC 9457 body, for the caller


def test_a_retry_of_the_same_batch_stores_nothing_twice(shared: ClonedApi) -> None:
    sensor = make_sensor(shared.admin)
    samples, sr = sf.read(BLDC_16K, dtype="float32", always_2d=True)
    values = embed(samples, sr)
    times = start_us() + np.arange(len(values), dtype=np.int64) * 1_000_000
    with SensorClient(shared.url, sensor.id, sensor.token) as client:
        first = client.send_windows(times, values)
        again = client.send_windows(times, values)  # as after a timeout with no answer
    assert (first.accepted, first.duplicates, again.accepted, again.duplicates) == (10, 0, 0, 10)
    np.testing.assert_array_equal(stored(shared.db, sensor.id)[1], values)


@pytest.mark.slow
def test_stream_survives_an_api_that_starts_late_and_rate_limits(
        shared: ClonedApi, folder: Path, tmp_path: Path) -> None:
    """Connection refused for a while, then 429 + Retry-After from the real limiter: every
    window of three real files ends up stored exactly once.

    The limit is low enough that the 429s do not depend on the client's speed: at 2
    requests a second after a burst of 4, the 25 one-window requests see no 429 only if
    each took half a second, embedding included (at the former 5/s with a burst of 5,
    0.2 s each, which a loaded machine reaches). Each 429 costs a 1 s Retry-After."""
    sensor = make_sensor(shared.admin)
    api = LiveApi(shared.settings, tmp_path, EARSHOT_RATE_LIMIT_PER_S="2",
                  EARSHOT_RATE_LIMIT_BURST="4")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    late = threading.Timer(2.0, api.start, kwargs={"wait": False})
    late.start()
    start = start_us()
    try:
        with SensorClient(api.url, sensor.id, sensor.token, sleep=sleep,
                          retry=RetryPolicy(max_s=2.0, give_up_after_s=90)) as client:
            totals = stream(client, find_recordings(folder), start, batch=1, realtime=False,
                            progress=False)
        limited = _count_429(api.url)
    finally:
        late.join()
        api.stop()
    times, values = expected_windows(folder, start)
    assert totals.windows == totals.accepted == len(times) == 25
    got_times, got_values = stored(shared.db, sensor.id)
    np.testing.assert_array_equal(got_times, times)
    np.testing.assert_allclose(got_values, values, rtol=1e-5, atol=1e-5)
    assert accepted_total(shared.db, sensor.id) == len(times)
    assert limited > 0
    # Backoff sleeps are jittered; Retry-After ones are the server's whole seconds.
    assert any(s >= 1.0 and s.is_integer() for s in sleeps), sleeps


def _count_429(url: str) -> float:
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("earshot_http_requests_total{") and 'status="429"' in line
               and "embeddings" in line)


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 25 Nov 2026 10:00:30 GMT",
                               now=datetime(2026, 11, 25, 10, 0, tzinfo=UTC).timestamp()) == 30
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    policy = RetryPolicy(initial_s=1.0, max_s=8.0, jitter=0.0)
    assert [policy.delay(a) for a in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert policy.delay(0, retry_after_s=12.0) == 12.0


@contextmanager
def running_bridge(settings: Settings, broker_url: str) -> Iterator[None]:
    """The bridge in-process (a thread): the MQTT path of `stream` ends in the database."""
    settings = settings.model_copy(update={
        "mqtt_url": broker_url, "mqtt_client_id": f"bridge-{uuid.uuid4().hex[:8]}"})
    pool = make_pool(settings, max_size=2, autocommit=True)
    pool.open()
    worker = Bridge(settings, pool)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: worker.subscribed, 30, "the bridge to subscribe")
        yield
    finally:
        worker.stop()
        thread.join(timeout=10)
        pool.close()


@pytest.fixture
def bridge(shared: ClonedApi, mosquitto: Mosquitto) -> Iterator[None]:
    with running_bridge(shared.settings, mosquitto.url):
        yield


@pytest.mark.usefixtures("bridge")
def test_stream_over_mqtt_reaches_the_database(shared: ClonedApi, mosquitto: Mosquitto) -> None:
    sensor = make_sensor(shared.admin)
    start = start_us()
    sender = MqttSender(mosquitto.url, sensor.id, retry=RetryPolicy(give_up_after_s=30))
    try:
        totals = stream(sender, find_recordings(BLDC_16K), start, batch=4, realtime=False,
                        progress=False, condition="1450rpm")
    finally:
        sender.close()
    assert totals.windows == 10 and not totals.counted
    wait_until(lambda: stored(shared.db, sensor.id)[0].size == 10, 30, "the bridge to store")
    assert conditions(shared.db, sensor.machine_id) == [("1450rpm", start, start + 9_000_001)]
    samples, sr = sf.read(BLDC_16K, dtype="float32", always_2d=True)
    np.testing.assert_array_equal(stored(shared.db, sensor.id)[1], embed(samples, sr))
    np.testing.assert_array_equal(stored(shared.db, sensor.id)[0],
                                  start + np.arange(10) * 1_000_000)


def test_the_documented_mosquitto_acl_confines_a_sensor_to_its_topic(
        shared: ClonedApi, tmp_path: Path) -> None:
    """docs/mqtt.md's password + ACL setup, verbatim: the bridge reads, a sensor writes its
    own topic, and a publish to another sensor's topic is refused and reported."""
    sensor, other = make_sensor(shared.admin), make_sensor(shared.admin)
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    for i, (user, password) in enumerate((("earshot-bridge", "bridge-pw"),
                                          (str(sensor.id), "sensor-pw"))):
        subprocess.run(["mosquitto_passwd", *(["-c"] if i == 0 else []), "-b", str(passwd),
                        user, password], check=True, capture_output=True)
    docs = (ROOT / "docs" / "mqtt.md").read_text()
    acl.write_text(docs.split("```acl\n", 1)[1].split("```", 1)[0])
    broker = Mosquitto(tmp_path / "mq", extra_conf=f"allow_anonymous false\n"
                       f"password_file {passwd}\nacl_file {acl}\n")
    broker.start()
    as_sensor = f"mqtt://{sensor.id}:sensor-pw@127.0.0.1:{broker.port}"
    retry = RetryPolicy(give_up_after_s=30)
    try:
        with running_bridge(shared.settings,
                            f"mqtt://earshot-bridge:bridge-pw@127.0.0.1:{broker.port}"):
            own = MqttSender(as_sensor, sensor.id, retry=retry)
            posing = MqttSender(as_sensor, other.id, client_id=f"pose-{sensor.id}", retry=retry)
            try:
                stream(own, find_recordings(BLDC_16K), start_us(), batch=5, realtime=False,
                       progress=False)
                with pytest.raises(BrokerRefusedError, match="Not authorized"):
                    stream(posing, find_recordings(BLDC_16K), start_us(), batch=5,
                           realtime=False, progress=False)
            finally:
                own.close()
                posing.close()
            wait_until(lambda: stored(shared.db, sensor.id)[0].size == 10, 30, "the bridge")
    finally:
        broker.stop()
    assert stored(shared.db, other.id)[0].size == 0


def test_realtime_stream_sends_each_window_once_it_has_been_heard(
        shared: ClonedApi, tmp_path: Path) -> None:
    sensor = make_sensor(shared.admin)
    samples, sr = sf.read(BLDC_16K, dtype="float32", always_2d=True)
    clip = tmp_path / "clip.wav"
    sf.write(clip, samples[: int(2.5 * sr)], sr, subtype="PCM_16")  # 2 full windows
    sent_at: list[float] = []

    class Timed(SensorClient):
        def send_windows(self, times_us: np.ndarray, values: np.ndarray,
                         condition: str | None = None) -> SendResult:
            sent_at.append(time.monotonic() - began)
            return super().send_windows(times_us, values, condition)

    with Timed(shared.url, sensor.id, sensor.token) as client:
        began = time.monotonic()
        totals = stream(client, find_recordings(clip), start_us(), batch=1, realtime=True,
                        progress=False)
    assert totals.accepted == 2
    assert sent_at[0] >= 1.0 and sent_at[1] >= 2.0  # window k is complete at (k + 1) s


def test_stream_sends_audio_that_agrees_with_its_windows(shared: ClonedApi, folder: Path) -> None:
    """--send-audio: windows first, then FLAC chunks of at least 3 s after the windows they
    cover; the server's windows from that audio agree with the sent ones (else 422), every
    sample of the three real files is held, and a re-run stores nothing twice."""
    sensor = make_sensor(shared.admin)
    start = start_us()
    for run in range(2):
        with SensorClient(shared.url, sensor.id, sensor.token) as client:
            audio = AudioShipper(client, chunk_s=3.0)
            totals = stream(client, find_recordings(folder), start, batch=2, realtime=False,
                            progress=False, audio=audio)
        assert (totals.accepted, totals.duplicates) == ((25, 0) if run == 0 else (0, 25))
        # 4 + 4 + rest windows of the two 10 s files, 4 + 1 of the 5 s one (batches of 2)
        assert audio.shipped.chunks == 3 + 3 + 2
    chunks = shared.db.execute("SELECT count(*), sum(frames::float8 / sample_rate) FROM "
                               "audio_chunks WHERE sensor_id = %s", (sensor.id,)).fetchone()
    durations = [sf.info(path).duration for path in sorted(folder.iterdir())]
    assert chunks is not None and chunks[0] == 8
    assert chunks[1] == pytest.approx(sum(durations), abs=1e-3)
    assert accepted_total(shared.db, sensor.id) == 25
