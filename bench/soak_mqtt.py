"""The MQTT half of the soak: a Mosquitto of its own, `earshot bridge` processes sharing
the stream ($share/earshot/..., one stable client id each, as `earshot run --bridges N`
runs them), and a paced publisher: each MQTT sensor publishes its last minute of windows
(60, one JSON message, QoS 1) once a minute, the sensors spread evenly over the minute.
Afterwards: every acknowledged message's windows reached the database (each sensor's
newest stored window is the newest it published)."""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import numpy as np
import psycopg

from bench import mqtt_rawpub, stack
from bench.ingest_mqtt import start_bridge, start_broker
from bench.loadgen import Bodies
from ingest.mqtt import sensor_topic
from service.settings import Settings

US = 1_000_000
BATCH = 60  # windows per message: a minute of a 1 Hz sensor
INFLIGHT = 1000
NEWEST = """
SELECT count(*) FROM (SELECT sensor_id, max(t) AS newest FROM embeddings
                      WHERE sensor_id = ANY(%s) GROUP BY sensor_id) s
WHERE s.newest >= %s
"""


def start(settings: Settings, bridges: int, log_dir: Path, procs: ExitStack
          ) -> tuple[int, list[stack.Child]]:
    """The broker and `bridges` bridges (stopped when `procs` closes): (port, processes)."""
    port, broker = start_broker(log_dir / "mosquitto")
    procs.callback(broker.stop)
    children = [broker]
    for i in range(bridges):
        bridge = start_bridge(settings, port, log_dir, f"earshot-soak-bridge-{i + 1}")
        procs.callback(bridge.stop)
        bridge.name = f"bridge-{i}"
        children.append(bridge)
    return port, children


@dataclass
class Publisher:
    """Paced QoS 1 publishing for `sensors` (ids) from one thread; `start_at` is
    time.time() of the load's start."""

    port: int
    sensors: list[str]
    vectors: np.ndarray
    duration_s: float
    start_at: float
    published: int = 0
    acked: int = 0
    last_us: int = 0  # start of the newest window published
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)

    def start(self) -> Publisher:
        self.thread.start()
        return self

    def _run(self) -> None:
        bodies = Bodies("json", self.vectors)
        topics = [sensor_topic(UUID(s)).encode() for s in self.sensors]
        first_us = int(self.start_at * US) - BATCH * US
        spacing = BATCH / len(topics)
        try:
            client = mqtt_rawpub.Publisher(self.port, "earshot-soak-sensors", INFLIGHT)
            for k in range(int(self.duration_s // BATCH)):
                times = first_us + (k * BATCH + np.arange(BATCH, dtype=np.int64)) * US
                for i, topic in enumerate(topics):
                    time.sleep(max(0.0, self.start_at + k * BATCH + i * spacing - time.time()))
                    rows = (np.arange(BATCH) + 7 * i + k) % len(self.vectors)
                    client.publish_one(topic, bodies.build(times, rows))
                    self.published += 1
                self.last_us = int(times[-1])
            self.acked = client.wait_acked()
            client.close()
        except OSError as exc:
            self.errors.append(repr(exc))

    def join(self) -> None:
        self.thread.join(timeout=self.duration_s + 120)

    def stored(self, conn: psycopg.Connection) -> int:
        """Sensors whose newest stored window is the newest one published."""
        newest = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=self.last_us)
        row = conn.execute(NEWEST, ([UUID(s) for s in self.sensors], newest)).fetchone()
        return int(row[0]) if row else 0

    def summary(self, conn: psycopg.Connection, drain_s: float) -> dict[str, object]:
        """After the run: wait (bounded) until every sensor's last message is stored."""
        began = time.monotonic()
        while self.stored(conn) < len(self.sensors) and time.monotonic() - began < drain_s:
            time.sleep(0.5)
        return {"sensors": len(self.sensors), "published": self.published,
                "acked": self.acked, "errors": self.errors,
                "sensors_caught_up": self.stored(conn),
                "drain_s": time.monotonic() - began}
