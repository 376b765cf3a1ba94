"""Faults under the audio bridge (`earshot audio-bridge`, its own process) while it works
through real recordings published over MQTT with QoS 1: SIGKILLed (its persistent session
gets every unacknowledged message again after the restart), or its database stopped
(nothing is acknowledged until stored). Every recording ends up held whole (bit for bit)
with its windows, each chunk once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from uuid import UUID

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from ingest.audio_store import read_audio
from ingest.client import MqttSender, RetryPolicy
from service.app import create_app
from service.settings import Settings
from tests.faults.audio_uploads import (
    Upload,
    check_whole_or_nothing,
    duplicate_chunk_rows,
    uploads,
)
from tests.faults.procs import ADMIN, PrivateCluster, remove_cluster, traversable_tmpdir
from tests.live import BridgeProcess, Mosquitto, bridge_process, wait_until

MESSAGES = 15
KILLS = 2
WAIT_S = 240.0


def audio_bridge(settings: Settings, broker: Mosquitto, log_dir: Path
                 ) -> AbstractContextManager[BridgeProcess]:
    return bridge_process(settings, broker, log_dir / "audio-bridge.log", "audio-bridge",
                          WAIT_S)


@pytest.fixture
def bridge(settings: Settings, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[BridgeProcess]:
    with audio_bridge(settings, mosquitto, tmp_path) as process:
        yield process


def chunks(conn: psycopg.Connection, sensor_id: UUID) -> int:
    row = conn.execute("SELECT count(*) FROM audio_chunks WHERE sensor_id = %s",
                       (sensor_id,)).fetchone()
    return int(row[0]) if row else 0


def check_lossless(conn: psycopg.Connection, sensor_id: UUID, upload: Upload) -> None:
    original, rate = upload.original()
    held = read_audio(conn, sensor_id, upload.start, upload.end)
    back = np.round(held.samples[:original.shape[0]] * 32768.0).astype(np.int16)
    assert held.sample_rate == rate and np.array_equal(back, original), upload.path


@pytest.mark.slow
def test_sigkilled_audio_bridge_stores_every_message_once(
        admin: TestClient, conn: psycopg.Connection, mosquitto: Mosquitto,
        bridge: BridgeProcess) -> None:
    conn.autocommit = True  # every poll sees the bridge's latest commits
    sensor_id = make_sensor(admin)
    work = uploads(MESSAGES)
    publish(mosquitto, sensor_id, work)
    for k in range(KILLS):
        target = (k + 1) * MESSAGES // (KILLS + 1)
        wait_until(lambda n=target: chunks(conn, sensor_id) >= n, WAIT_S, f"{target} stored")
        time.sleep(0.2)  # into the next message: decoding, embedding or committing
        bridge.kill()
        bridge.start()
        bridge.wait_subscribed(k + 2)
    wait_until(lambda: chunks(conn, sensor_id) >= MESSAGES, WAIT_S, "every message stored")
    time.sleep(2.0)  # a redelivered message still in the works must add nothing
    assert all(check_whole_or_nothing(conn, str(sensor_id), work))
    assert duplicate_chunk_rows(conn, str(sensor_id)) == 0
    for upload in work:
        if upload.lossless:
            check_lossless(conn, sensor_id, upload)
    assert "dead-lettered" not in bridge.log_text()
    print(f"\n{KILLS} kills; redelivered messages found already held: "
          f"{bridge.log_text().count('already held')}")


def make_sensor(admin: TestClient) -> UUID:
    machine = admin.post("/v1/machines", json={"name": "m", "kind": "pump"}).json()
    made = admin.post(f"/v1/machines/{machine['id']}/sensors",
                      json={"name": "mic", "embedding": {"kind": "logmel-v1"}})
    assert made.status_code == 201, made.text
    return UUID(made.json()["id"])


def publish(broker: Mosquitto, sensor_id: UUID, work: list[Upload]) -> None:
    sender = MqttSender(broker.url, sensor_id, retry=RetryPolicy(give_up_after_s=60))
    try:
        for upload in work:  # returns once the broker holds it (PUBACK)
            sender.upload_audio(upload.body, start_us=_us(upload), content_type="audio/wav")
    finally:
        sender.close()


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    the_cluster = PrivateCluster(traversable_tmpdir("earshot-mqtt-audio-"))
    try:
        yield the_cluster.create()
    finally:
        remove_cluster(the_cluster)


@pytest.mark.slow
def test_database_outage_under_the_audio_bridge_acks_nothing_until_stored(
        cluster: PrivateCluster, mosquitto: Mosquitto, tmp_path: Path) -> None:
    with TestClient(create_app(cluster.settings), headers=ADMIN) as admin:
        sensor_id = make_sensor(admin)
    with audio_bridge(cluster.settings, mosquitto, tmp_path) as bridge:
        work = uploads(8, hours_ago=3.0)
        with psycopg.connect(cluster.settings.resolved_database_url(), autocommit=True) as db:
            publish(mosquitto, sensor_id, work[:2])
            wait_until(lambda: chunks(db, sensor_id) == 2, WAIT_S, "the first two stored")
        cluster.stop()
        try:
            publish(mosquitto, sensor_id, work[2:])  # the broker keeps them for the bridge
            wait_until(lambda: "retrying" in bridge.log_text(), WAIT_S, "the bridge to retry")
        finally:
            cluster.start()
        with psycopg.connect(cluster.settings.resolved_database_url(), autocommit=True) as db:
            wait_until(lambda: chunks(db, sensor_id) >= len(work), WAIT_S, "all stored")
            time.sleep(2.0)
            assert all(check_whole_or_nothing(db, str(sensor_id), work))
            assert duplicate_chunk_rows(db, str(sensor_id)) == 0
        assert "dead-lettered" not in bridge.log_text()


def _us(upload: Upload) -> int:
    return int(upload.start.timestamp()) * 1_000_000 + upload.start.microsecond
