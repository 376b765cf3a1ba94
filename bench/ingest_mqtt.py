"""MQTT ingest for the ingest benchmark: a Mosquitto of its own, `earshot bridge` as a
subprocess, and publisher processes (paho, QoS 1) sending the JSON body of an embeddings
request per message. A cell's rate is the windows published divided by the time from the
first publish until all of them are committed (counted in the database)."""

from __future__ import annotations

import getpass
import multiprocessing
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import paho.mqtt.client as mqtt
import psycopg

from bench import mqtt_rawpub, stack
from bench.loadgen import Bodies
from ingest.mqtt import sensor_topic
from service.settings import Settings

PUBLISHERS = 2
MAX_INFLIGHT = 1000
DRAIN_TIMEOUT_S = 180.0
US = 1_000_000
COUNT_RANGE = "SELECT count(*) FROM embeddings WHERE t >= %s AND t < %s"


@dataclass(frozen=True)
class PublishJob:
    port: int
    sensors: list[str]
    vectors: np.ndarray
    per_message: int
    first_us: int
    duration_s: float
    start_at: float
    lean: bool = True  # bench.mqtt_rawpub; False: paho, as a sensor's client would be


def _messages(job: PublishJob, bodies: Bodies, deadline: float) -> Iterator[tuple[bytes, bytes]]:
    """Round-robin over the job's sensors, each message the sensor's next `per_message`
    1 s windows, until `deadline` (time.monotonic())."""
    n_vec, k = len(bodies.vectors), 0
    topics = [sensor_topic(UUID(sensor)).encode() for sensor in job.sensors]
    while time.monotonic() < deadline:
        s, j = k % len(topics), k // len(topics)
        offsets = j * job.per_message + np.arange(job.per_message, dtype=np.int64)
        yield topics[s], bodies.build(job.first_us + offsets * US, (offsets + s * 7) % n_vec)
        k += 1


def _publish(job: PublishJob) -> tuple[int, float]:
    """(messages published and acknowledged by the broker, CPU seconds)."""
    if not job.lean:
        return _publish_paho(job)
    bodies = Bodies("json", job.vectors)
    publisher = mqtt_rawpub.Publisher(job.port, f"bench-pub-{os.getpid()}", MAX_INFLIGHT)
    time.sleep(max(0.0, job.start_at - time.time()))
    cpu0 = sum(os.times()[:2])
    try:
        sent = publisher.publish_all(_messages(job, bodies, time.monotonic() + job.duration_s))
    finally:
        publisher.close()
    return sent, sum(os.times()[:2]) - cpu0


def _publish_paho(job: PublishJob) -> tuple[int, float]:
    """The same messages through paho's client (its network thread, QoS 1)."""
    bodies = Bodies("json", job.vectors)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.max_inflight_messages_set(MAX_INFLIGHT)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", job.port)
    client.loop_start()
    time.sleep(max(0.0, job.start_at - time.time()))
    cpu0, sent, infos = sum(os.times()[:2]), 0, []
    for topic, body in _messages(job, bodies, time.monotonic() + job.duration_s):
        infos.append(client.publish(topic.decode(), body, qos=1))
        sent += 1
        if len(infos) >= MAX_INFLIGHT:  # wait for the broker before queueing more
            infos.pop(0).wait_for_publish(60)
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()
    return sent, sum(os.times()[:2]) - cpu0


def start_broker(state_dir: Path) -> tuple[int, stack.Child]:
    """A Mosquitto on a free port (in-memory: the bridge's persistent session is what is
    measured, not the broker's disk): (port, process)."""
    port = stack.free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    conf = state_dir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    f"max_queued_messages 10000000\nmax_inflight_messages {MAX_INFLIGHT}\n"
                    f"user {getpass.getuser()}\n")
    child = stack.Child("mosquitto", ["mosquitto", "-c", str(conf)], dict(os.environ),
                        state_dir / "mosquitto.log")

    def listening() -> bool:
        child.check()
        return _listening(port)

    try:
        stack.wait_until(listening, 30.0, "Mosquitto", interval_s=0.1)
    except BaseException:
        child.stop()
        raise
    return port, child


@contextmanager
def broker(state_dir: Path) -> Iterator[int]:
    port, child = start_broker(state_dir)
    try:
        yield port
    finally:
        child.stop()


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_bridge(settings: Settings, port: int, log_dir: Path, client_id: str) -> stack.Child:
    """`earshot bridge` on the broker at `port`, returned once it has subscribed."""
    env = stack.child_env(settings, EARSHOT_MQTT_URL=f"mqtt://127.0.0.1:{port}",
                          EARSHOT_LOG_LEVEL="INFO", EARSHOT_MQTT_CLIENT_ID=client_id)
    child = stack.Child("bridge", [str(stack.EARSHOT), "bridge"], env,
                        log_dir / f"bridge-{client_id}.log")

    def subscribed() -> bool:
        child.check()
        return "subscribed" in child.tail(100_000)

    try:
        stack.wait_until(subscribed, 60.0, "the bridge to subscribe", interval_s=0.1)
    except BaseException:
        child.stop()
        raise
    return child


@contextmanager
def bridge(st: stack.Stack, port: int) -> Iterator[stack.Child]:
    child = start_bridge(st.settings, port, st.log_dir, f"bench-{int(time.time())}")
    try:
        yield child
    finally:
        child.stop()


def _count(conn: psycopg.Connection, first_us: int) -> int:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    lo = epoch + timedelta(microseconds=first_us)
    row = conn.execute(COUNT_RANGE, (lo, lo + timedelta(days=1))).fetchone()
    return int(row[0]) if row else 0


def measure(st: stack.Stack, conn: psycopg.Connection, port: int, bridge_proc: stack.Child,
            sensors: list[str], per_message: int, first_us: int, vectors: np.ndarray,
            duration_s: float, lean: bool = True) -> dict[str, Any]:
    """One cell: publish for `duration_s`, then wait until every window is committed."""
    start_at = time.time() + 3.0
    jobs = [PublishJob(port, sensors[i::PUBLISHERS], vectors, per_message, first_us,
                       duration_s, start_at, lean) for i in range(PUBLISHERS)]
    cpu0, db0 = bridge_proc.cpu_seconds(), stack.backend_cpu_s(conn)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(PUBLISHERS) as pool:
        pending = pool.map_async(_publish, jobs)
        time.sleep(max(0.0, start_at - time.time()))
        begun = time.monotonic()
        results = pending.get(timeout=duration_s + 120)
    messages = sum(sent for sent, _ in results)
    windows = messages * per_message
    stack.wait_until(lambda: _count(conn, first_us) >= windows, DRAIN_TIMEOUT_S,
                     f"{windows} MQTT windows stored", interval_s=0.05)
    seconds = time.monotonic() - begun
    stored = _count(conn, first_us)
    per = 1e6 / max(1, windows)
    return {"per_message": per_message, "publisher": "lean" if lean else "paho",
            "sensors": len(sensors), "messages": messages,
            "windows": windows, "stored": stored, "seconds": seconds,
            "windows_per_s": windows / seconds, "messages_per_s": messages / seconds,
            "bridge_cpu_us": (bridge_proc.cpu_seconds() - cpu0) * per,
            "db_cpu_us": (stack.backend_cpu_s(conn) - db0) * per,
            "pub_cpu_us": sum(cpu for _, cpu in results) * per}
