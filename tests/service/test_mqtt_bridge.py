"""The MQTT bridge end to end: a real Mosquitto, the bridge as its own process
(`earshot bridge`), the real TimescaleDB; faults injected by killing and restarting them."""

from __future__ import annotations

import json
import threading
import time
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

from ingest.codec import to_rfc3339
from ingest.features import embed
from ingest.mqtt import connect_async, parse_mqtt_url, persistent_client, sensor_topic
from ingest.mqtt_store import (
    DimCache,
    Inbound,
    InvalidMessage,
    TopicPattern,
    Validator,
    store_group,
)
from ingest.store import read_windows
from service.settings import Settings
from tests import db as test_db
from tests.conftest import DATA_DIR
from tests.live import BridgeProcess, Mosquitto, bridge_process, wait_until
from tests.service.scoring.factories import make_machine

BLDC_16K = DATA_DIR / "bldc" / "bldc_motor__healthy_M1_1450rpm.wav"
DIM = 128
WAIT_S = 60.0


class Publisher:
    """A sensor publishing with QoS 1 on a persistent session; paho keeps every message
    until the broker's PUBACK and resends it after a reconnect."""

    def __init__(self, broker_url: str) -> None:
        broker = parse_mqtt_url(broker_url)
        self._connected = threading.Event()
        self.client = persistent_client(f"pub-{uuid.uuid4().hex[:8]}", broker)
        self.client.on_connect = lambda *_: self._connected.set()
        # PUBACKs seen by mid: MQTTMessageInfo refuses to report on a message published
        # while the broker was away, though paho keeps it and resends it on reconnect.
        self._acked: set[int] = set()
        self.client.on_publish = lambda _c, _u, mid, *_: self._acked.add(mid)
        connect_async(self.client, broker)
        self.client.loop_start()
        assert self._connected.wait(10), "publisher could not connect"
        self._sent: list[int] = []

    def publish(self, topic: str, payload: bytes | str) -> None:
        self._sent.append(self.client.publish(topic, payload, qos=1).mid)

    def wait_all_acked(self, timeout_s: float = WAIT_S) -> None:
        wait_until(lambda: self._acked.issuperset(self._sent), timeout_s,
                   "the broker to acknowledge every message")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def db(conn: psycopg.Connection) -> psycopg.Connection:
    conn.autocommit = True  # every poll sees the bridge's latest commits
    return conn


@pytest.fixture
def bridge(settings: Settings, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[BridgeProcess]:
    with bridge_process(settings, mosquitto, tmp_path / "bridge.log", wait_s=WAIT_S) as process:
        yield process


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    pub = Publisher(mosquitto.url)
    try:
        yield pub
    finally:
        pub.close()


def make_sensor(conn: psycopg.Connection, dim: int = DIM) -> UUID:
    return make_machine(conn, dim=dim)[1][0]


def payload(times_us: np.ndarray, values: np.ndarray) -> str:
    windows = [{"t": to_rfc3339(int(t)), "v": [float(x) for x in v]}
               for t, v in zip(times_us, values, strict=True)]
    return json.dumps({"windows": windows})


def start_us() -> int:
    return (int(time.time()) - 3600) * 1_000_000


def count(conn: psycopg.Connection, sensor_id: UUID) -> int:
    row = conn.execute("SELECT count(*) FROM embeddings WHERE sensor_id = %s",
                       (sensor_id,)).fetchone()
    return int(row[0]) if row else 0


def wait_for_count(conn: psycopg.Connection, sensor_id: UUID, n: int,
                   bridge: BridgeProcess) -> None:
    def reached() -> bool:
        if bridge.proc is not None and bridge.proc.poll() is not None:
            pytest.fail(f"bridge exited: {bridge.log_text()[-2000:]}")
        return count(conn, sensor_id) >= n

    wait_until(reached, WAIT_S, f"{n} windows stored", interval_s=0.1)
    assert count(conn, sensor_id) == n


def assert_stored(conn: psycopg.Connection, sensor_id: UUID, times_us: np.ndarray,
                  values: np.ndarray) -> None:
    first = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(times_us[0]))
    times, stored = read_windows(conn, sensor_id, first, first + timedelta(days=1), DIM)
    expected = [first + timedelta(microseconds=int(t - times_us[0])) for t in times_us]
    assert times == expected
    np.testing.assert_array_equal(stored, values)
    batches = conn.execute("SELECT coalesce(sum(n), 0) FROM ingest_batches WHERE sensor_id = %s",
                           (sensor_id,)).fetchone()
    assert batches is not None and batches[0] == len(times_us)  # nothing accepted twice


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    times = start_us() + np.arange(n, dtype=np.int64) * 1_000_000
    return times, np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


def test_bridge_stores_logmel_windows_of_a_real_recording(
        db: psycopg.Connection, bridge: BridgeProcess, publisher: Publisher) -> None:
    samples, sr = sf.read(BLDC_16K, dtype="float32", always_2d=True)
    values = embed(samples, sr)
    times = start_us() + np.arange(len(values), dtype=np.int64) * 1_000_000
    sensor_id = make_sensor(db)
    topic = sensor_topic(sensor_id)
    for i in range(0, len(values), 3):  # messages of up to three windows, as a gateway sends
        publisher.publish(topic, payload(times[i:i + 3], values[i:i + 3]))
    publisher.wait_all_acked()
    wait_for_count(db, sensor_id, len(values), bridge)
    assert len(values) == 10
    assert_stored(db, sensor_id, times, values)


def test_invalid_messages_are_dead_lettered_and_do_not_block_the_stream(
        db: psycopg.Connection, bridge: BridgeProcess, publisher: Publisher) -> None:
    sensor_id = make_sensor(db)
    topic = sensor_topic(sensor_id)
    times, values = synthetic(3, seed=1)
    nan = payload(times[:1], values[:1]).replace(str(float(values[0, 5])), "NaN", 1)
    stranger = uuid.uuid4()
    # (topic, payload, reason expected, sensor id expected in the dead-letter row)
    bad: list[tuple[str, bytes | str, str, UUID | None]] = [
        (topic, b"{not json", "malformed JSON", sensor_id),
        (topic, payload(times[:1], values[:1, :64]), "v has 64 elements, expected 128",
         sensor_id),
        (topic, nan, "NaN", sensor_id),
        (topic, json.dumps({"windows": [{"t": "2026-11-22T10:00:00", "v": [0.0] * DIM}]}),
         "no UTC offset", sensor_id),
        (sensor_topic(stranger), payload(times[:1], values[:1]), "unknown sensor", stranger),
        ("earshot/sensors/not-a-uuid/embeddings", b"{}", "not a sensor id", None),
        (topic, b"\x00\xff binary junk", "malformed JSON", sensor_id),
    ]
    for bad_topic, body, _, _ in bad:
        publisher.publish(bad_topic, body)
    publisher.publish(topic, payload(times, values))  # after every poison message
    publisher.wait_all_acked()
    wait_for_count(db, sensor_id, 3, bridge)
    assert_stored(db, sensor_id, times, values)
    wait_until(lambda: _dead_letters(db) >= len(bad), WAIT_S, "dead letters")
    rows = db.execute("SELECT sensor_id, topic, source, reason, payload_excerpt "
                      "FROM ingest_errors ORDER BY id").fetchall()
    assert len(rows) == len(bad)
    for row, (bad_topic, body, why, expected_sensor) in zip(rows, bad, strict=True):
        text = body if isinstance(body, str) else body.decode("utf-8", "replace")
        assert why in row[3], row[3]
        assert row[:3] == (expected_sensor, bad_topic, "mqtt")
        assert row[4] == text[:200].replace("\x00", "\ufffd")  # NUL cannot be stored


def _dead_letters(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM ingest_errors").fetchone()
    return int(row[0]) if row else 0


def publish_all(publisher: Publisher, topic: str, times: np.ndarray, values: np.ndarray,
                per_message: int, pause_s: float = 0.0) -> None:
    for i in range(0, len(times), per_message):
        publisher.publish(topic, payload(times[i:i + per_message], values[i:i + per_message]))
        time.sleep(pause_s)


@pytest.mark.slow
def test_bridge_killed_mid_stream_stores_every_window_exactly_once(
        db: psycopg.Connection, bridge: BridgeProcess, publisher: Publisher) -> None:
    sensor_id = make_sensor(db)
    times, values = synthetic(600, seed=2)
    # ~1.5 s of publishing (the bridge keeps up at several hundred messages/s), so the
    # kill lands while messages are still arriving.
    feeder = threading.Thread(target=publish_all,
                              args=(publisher, sensor_topic(sensor_id), times, values, 2, 0.005))
    feeder.start()
    wait_until(lambda: count(db, sensor_id) >= 20, WAIT_S, "the stream to start")
    bridge.kill()  # SIGKILL: no cleanup, whatever was received but not acked is in flight
    stored_at_kill = count(db, sensor_id)
    assert 20 <= stored_at_kill < len(times), "the kill must land mid-stream"
    feeder.join(timeout=WAIT_S)
    publisher.wait_all_acked()
    bridge.start()
    bridge.wait_subscribed(times=2)
    wait_for_count(db, sensor_id, len(times), bridge)
    assert_stored(db, sensor_id, times, values)
    assert _dead_letters(db) == 0


@pytest.mark.slow
def test_broker_restart_mid_stream_loses_nothing(
        db: psycopg.Connection, mosquitto: Mosquitto, bridge: BridgeProcess,
        publisher: Publisher) -> None:
    sensor_id = make_sensor(db)
    topic = sensor_topic(sensor_id)
    times, values = synthetic(400, seed=3)
    publish_all(publisher, topic, times[:200], values[:200], per_message=1)
    publisher.wait_all_acked()  # the broker owns them now, most not yet delivered
    mosquitto.stop()
    stored_at_stop = count(db, sensor_id)
    publish_all(publisher, topic, times[200:], values[200:], per_message=1)  # paho holds these
    mosquitto.start()
    publisher.wait_all_acked()
    wait_for_count(db, sensor_id, len(times), bridge)
    assert stored_at_stop < len(times)
    assert_stored(db, sensor_id, times, values)


@pytest.mark.slow
def test_database_outage_holds_messages_until_the_database_is_back(
        db: psycopg.Connection, settings: Settings, bridge: BridgeProcess,
        publisher: Publisher) -> None:
    sensor_id = make_sensor(db)
    topic = sensor_topic(sensor_id)
    times, values = synthetic(30, seed=4)
    publish_all(publisher, topic, times[:5], values[:5], per_message=1)
    wait_for_count(db, sensor_id, 5, bridge)
    with database_refusing_connections(db, settings):
        publish_all(publisher, topic, times[5:], values[5:], per_message=1)
        publisher.wait_all_acked()
        wait_until(lambda: "retrying" in bridge.log_text(), WAIT_S, "the bridge to retry")
        assert count(db, sensor_id) == 5
    wait_for_count(db, sensor_id, len(times), bridge)
    assert_stored(db, sensor_id, times, values)
    assert _dead_letters(db) == 0


@contextmanager
def database_refusing_connections(db: psycopg.Connection, settings: Settings) -> Iterator[None]:
    """A real outage for everyone but the test: new connections are refused and open ones
    (the bridge's pool) are terminated."""
    name = db.info.dbname
    with psycopg.connect(test_db.admin_url(settings), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                      "AND pid <> %s AND backend_type = 'client backend'",
                      (name, db.info.backend_pid))
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


def test_a_batch_the_database_refuses_is_dead_lettered_and_its_group_still_stored(
        db: psycopg.Connection, settings: Settings) -> None:
    """In-process: a trigger makes the database refuse one window (as a constraint added
    later might); only that message is parked, its group-mates commit."""
    sensor_id = make_sensor(db)
    times, values = synthetic(4, seed=5)
    refused = to_rfc3339(int(times[2]))
    db.execute(f"""
        CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
          IF NEW.t = '{refused}'::timestamptz THEN
            RAISE EXCEPTION 'window refused' USING ERRCODE = 'data_exception';
          END IF; RETURN NEW; END $$;
        CREATE TRIGGER refuse BEFORE INSERT ON embeddings FOR EACH ROW EXECUTE FUNCTION refuse();
    """)
    topic = sensor_topic(sensor_id)
    group = [Inbound(1, i, 1, topic, payload(times[i:i + 1], values[i:i + 1]).encode())
             for i in range(4)]
    validator = Validator(TopicPattern(settings.mqtt_topic), settings.batch_limits(), 1 << 20)
    assert store_group(db, validator, DimCache(), group) == (3, 1)
    keep = [0, 1, 3]
    assert_stored(db, sensor_id, times[keep], values[keep])
    row = db.execute("SELECT reason FROM ingest_errors").fetchone()
    assert row is not None and "the database refused the batch: window refused" in row[0]


def test_conditions_in_messages_become_the_machines_condition_ranges(
        db: psycopg.Connection, settings: Settings) -> None:
    """In-process: a group of one sensor's messages, most naming a condition in the body
    ("condition"), is one insert and one range per run of a condition."""
    sensor_id = make_sensor(db)
    times, values = synthetic(8, seed=6)
    names = ["slow", "slow", "slow", None, "fast", "fast", "slow", "slow"]
    topic = sensor_topic(sensor_id)

    def body(i: int) -> bytes:
        doc = json.loads(payload(times[i:i + 1], values[i:i + 1]))
        return json.dumps({**doc, "condition": names[i]} if names[i] else doc).encode()

    group = [Inbound(1, i, 1, topic, body(i)) for i in range(8)]
    validator = Validator(TopicPattern(settings.mqtt_topic), settings.batch_limits(), 1 << 20)
    assert store_group(db, validator, DimCache(), group) == (8, 0)
    assert_stored(db, sensor_id, times, values)
    ranges = db.execute("SELECT name, start_at, end_at FROM machine_conditions "
                        "WHERE source = 'sensor' ORDER BY start_at").fetchall()
    at = [datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(t)) for t in times]
    one_us = timedelta(microseconds=1)
    # Window 3 came without a condition: no range covers it.
    assert ranges == [("slow", at[0], at[2] + one_us), ("fast", at[4], at[5] + one_us),
                      ("slow", at[6], at[7] + one_us)]


def test_topic_pattern_and_broker_urls() -> None:
    sensor_id = uuid.uuid4()
    pattern = TopicPattern("earshot/sensors/+/embeddings")
    assert pattern.sensor_id(sensor_topic(sensor_id)) == sensor_id
    with pytest.raises(InvalidMessage, match="does not match"):
        pattern.sensor_id("earshot/sensors/x")
    with pytest.raises(ValueError, match="exactly one"):
        TopicPattern("earshot/#")
    broker = parse_mqtt_url("mqtts://s%40x:p%3Aw@broker.example")
    assert (broker.host, broker.port, broker.username, broker.password, broker.tls) == (
        "broker.example", 8883, "s@x", "p:w", True)
    assert str(broker) == "mqtts://broker.example:8883"  # never the password in logs
    with pytest.raises(ValueError, match="mqtt://host:1883"):
        parse_mqtt_url("http://broker:1883")
