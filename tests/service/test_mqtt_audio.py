"""Audio over MQTT end to end: a real Mosquitto, the audio bridge (in a thread, or as its own
process when it is killed), the real TimescaleDB. Stored through the HTTP upload's code path:
lossless audio read back bit for bit with its windows, redeliveries stored once, poison
messages dead-lettered, nothing acknowledged before it is committed."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import numpy as np
import psycopg
import pytest
import soundfile as sf
from fastapi.testclient import TestClient
from paho.mqtt.properties import Properties

from ingest.audio_store import read_audio
from ingest.client import MqttSender, RetryPolicy
from ingest.client_cli import main as sensor_main
from ingest.features import embed
from ingest.mqtt import AUDIO_TOPIC, audio_properties, sensor_topic
from service.db import make_pool
from service.mqtt_audio import SOURCE, AudioBridge
from service.mqtt_bridge import Bridge
from service.settings import Settings
from tests.conftest import DATA_DIR
from tests.live import Mosquitto, wait_until

RECORDINGS = [DATA_DIR / p for p in (
    "bldc/bldc_motor__healthy_M1_1400rpm.wav",  # 44.1 kHz stereo, 1.8 MB
    "dcase2020/dcase2020_dev_unknown__test__anomaly_id_00_00000000.wav",  # 16 kHz mono
    "mimii/mimii_0dB_singles__fan_id_00_abnormal_00000000.wav",  # 16 kHz mono
)]
WAIT_S = 90.0
_US = timedelta(microseconds=1)


@pytest.fixture
def db(conn: psycopg.Connection) -> psycopg.Connection:
    conn.autocommit = True  # every poll sees the bridge's latest commits
    return conn


def sensor(admin: TestClient) -> UUID:
    machine = admin.post("/v1/machines", json={"name": f"m-{uuid.uuid4().hex[:6]}",
                                               "kind": "pump"})
    made = admin.post(f"/v1/machines/{machine.json()['id']}/sensors",
                      json={"name": "mic", "embedding": {"kind": "logmel-v1"}})
    assert made.status_code == 201, made.text
    return UUID(made.json()["id"])


def bridge_settings(settings: Settings, broker: Mosquitto) -> Settings:
    return settings.model_copy(update={"mqtt_url": broker.url,
                                       "mqtt_client_id": f"b-{uuid.uuid4().hex[:8]}"})


@contextmanager
def running(worker: AudioBridge | Bridge, settings: Settings) -> Iterator[None]:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: worker.subscribed, 30, "the bridge to subscribe")
        yield
    finally:
        worker.stop()
        thread.join(timeout=15)


@pytest.fixture
def audio_bridge(settings: Settings, mosquitto: Mosquitto) -> Iterator[AudioBridge]:
    settings = bridge_settings(settings, mosquitto)
    pool = make_pool(settings, max_size=2, autocommit=True)
    pool.open()
    worker = AudioBridge(settings, pool)
    try:
        with running(worker, settings):
            yield worker
    finally:
        pool.close()


@pytest.fixture
def sender(mosquitto: Mosquitto) -> Iterator[MqttSender]:
    """Any sensor's client: publishing to another sensor's topic needs no ACL here."""
    the_sender = MqttSender(mosquitto.url, uuid.uuid4(), retry=RetryPolicy(give_up_after_s=30))
    try:
        yield the_sender
    finally:
        the_sender.close()


def publish(sender: MqttSender, sensor_id: UUID | str, body: bytes,
            props: Properties | None) -> None:
    topic = sensor_topic(sensor_id, AUDIO_TOPIC) if isinstance(sensor_id, UUID) else sensor_id
    sender._publish(topic, body, props)


def props_at(start: datetime) -> Properties:
    return audio_properties(start.isoformat(), "audio/wav")


def count(db: psycopg.Connection, sql: str, *args: object) -> int:
    row = db.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])


def chunks_of(db: psycopg.Connection, sensor_id: UUID) -> int:
    return count(db, "SELECT count(*) FROM audio_chunks WHERE sensor_id = %s", sensor_id)


def check_held(db: psycopg.Connection, sensor_id: UUID, path: Path, start: datetime) -> None:
    original, rate = sf.read(path, dtype="int16", always_2d=True)
    end = start + (-(-original.shape[0] * 1_000_000 // rate)) * _US
    held = read_audio(db, sensor_id, start, end)
    assert held.sample_rate == rate
    back = np.round(held.samples[:original.shape[0]] * 32768.0).astype(np.int16)
    assert np.array_equal(back, original), path.name  # lossless: bit for bit
    windows = count(db, "SELECT count(*) FROM embeddings WHERE sensor_id = %s AND t >= %s "
                    "AND t < %s", sensor_id, start, end)
    samples, _ = sf.read(path, dtype="float32", always_2d=True)
    assert windows == len(embed(samples, rate))


def test_audio_over_mqtt_is_stored_like_an_upload_and_once(
        admin: TestClient, db: psycopg.Connection, audio_bridge: AudioBridge,
        sender: MqttSender) -> None:
    sensor_id = sensor(admin)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    starts = [base + timedelta(seconds=20 * i) for i in range(len(RECORDINGS))]
    for _ in range(2):  # the second round is a redelivery of every message
        for path, start in zip(RECORDINGS, starts, strict=True):
            publish(sender, sensor_id, path.read_bytes(), props_at(start))
    wait_until(lambda: audio_bridge.stored_chunks == len(RECORDINGS) and not
               audio_bridge._queue.qsize(), WAIT_S, "the audio to be stored")
    wait_until(lambda: chunks_of(db, sensor_id) == len(RECORDINGS), WAIT_S, "the commits")
    for path, start in zip(RECORDINGS, starts, strict=True):
        check_held(db, sensor_id, path, start)
    # A sentinel after the redeliveries: once it is stored, they were all handled.
    sentinel = base + timedelta(minutes=5)
    publish(sender, sensor_id, RECORDINGS[1].read_bytes(), props_at(sentinel))
    wait_until(lambda: chunks_of(db, sensor_id) == len(RECORDINGS) + 1, WAIT_S, "the sentinel")
    assert count(db, "SELECT count(*) - count(DISTINCT t_start) FROM audio_chunks "
                 "WHERE sensor_id = %s", sensor_id) == 0
    assert audio_bridge.dead_letters == 0


def test_invalid_audio_messages_are_dead_lettered_and_do_not_block(
        admin: TestClient, db: psycopg.Connection, audio_bridge: AudioBridge,
        sender: MqttSender) -> None:
    sensor_id = sensor(admin)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    wav = RECORDINGS[1].read_bytes()
    poison = [
        (sensor_id, b"RIFF\x00\x00garbage", props_at(start), "not readable audio"),
        (sensor_id, wav[:2000], props_at(start), "truncated"),
        (sensor_id, wav, audio_properties("yesterday", "audio/wav"), "RFC 3339"),
        (sensor_id, wav, None, "missing"),
        (uuid.uuid4(), wav, props_at(start), "does not exist"),
        ("earshot/sensors/not-a-uuid/audio", wav, props_at(start), "not a sensor id"),
        (sensor_id, wav, props_at(start + timedelta(days=3)), "after the server time"),
    ]
    for target, body, props, _ in poison:
        publish(sender, target, body, props)
    publish(sender, sensor_id, wav, props_at(start + timedelta(minutes=1)))  # valid
    wait_until(lambda: chunks_of(db, sensor_id) == 1, WAIT_S, "the valid message")
    wait_until(lambda: audio_bridge.dead_letters == len(poison), WAIT_S, "the dead letters")
    rows = db.execute("SELECT reason FROM ingest_errors WHERE source = %s ORDER BY id",
                      (SOURCE,)).fetchall()
    assert len(rows) == len(poison)
    for (reason,), (_, _, _, expected) in zip(rows, poison, strict=True):
        assert expected in reason, (expected, reason)
    assert count(db, "SELECT count(*) FROM embeddings WHERE sensor_id = %s",
                 sensor_id) == 10  # only the valid message's windows


def test_stream_send_audio_over_mqtt(admin: TestClient, db: psycopg.Connection,
                                     settings: Settings, mosquitto: Mosquitto,
                                     audio_bridge: AudioBridge, tmp_path: Path) -> None:
    """`earshot sensor stream --mqtt --send-audio`: windows to the embeddings bridge, FLAC
    chunks to the audio bridge; every sample of the recordings is held with its windows."""
    sensor_id = sensor(admin)
    folder = tmp_path / "rec"
    folder.mkdir()
    for i, path in enumerate(RECORDINGS[1:]):
        (folder / f"{i}.wav").symlink_to(path)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    pool = make_pool(bridge_settings(settings, mosquitto), max_size=2, autocommit=True)
    pool.open()
    windows = Bridge(bridge_settings(settings, mosquitto), pool)
    try:
        with running(windows, settings):
            code = None
            try:
                sensor_main(["stream", "--mqtt", mosquitto.url, "--sensor-id", str(sensor_id),
                             "--start", start.isoformat(), "--send-audio",
                             "--audio-chunk-s", "4", "--batch", "2", "--quiet", str(folder)])
            except SystemExit as exc:
                code = exc.code
            assert code in (None, 0)
            wait_until(lambda: count(db, "SELECT count(*) FROM embeddings WHERE sensor_id = "
                                     "%s", sensor_id) == 20, WAIT_S, "the windows")
            wait_until(lambda: chunks_of(db, sensor_id) == 6, WAIT_S, "the audio chunks")
    finally:
        pool.close()
    for i, path in enumerate(RECORDINGS[1:]):
        check_held(db, sensor_id, path, start + timedelta(seconds=10 * i))
    assert audio_bridge.dead_letters == 0
