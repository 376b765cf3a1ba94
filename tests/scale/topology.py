"""Pieces of the whole scaled topology for tests/scale/test_topology.py: `earshot api`
processes, supervised bridges, sensors with ingest tokens, and two sensor clients that
stream until acknowledged: over HTTP to whichever API answers (a load balancer's
failover), and over MQTT (QoS 1, returning after PUBACK)."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import httpx
import numpy as np
import psycopg

from ingest import codec
from ingest.client import MqttSender
from service import security
from service.settings import Settings
from service.supervisor import Child, bridge_client_id
from tests.live import (
    ROOT,
    START_TIMEOUT_S,
    Mosquitto,
    free_port,
    service_env,
    stop_process,
    wait_until,
)
from tests.scale.procs import EARSHOT

CHUNK, PAUSE_S = 5, 0.15


class Api:
    """One `earshot api` process on its own port."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = service_env(settings, EARSHOT_PORT=str(self.port))
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen([str(EARSHOT), "api"], cwd=ROOT, env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
        self.log_path = log_path

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, self.log_path.read_text(errors="replace")[-2000:]
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, START_TIMEOUT_S, f"the API on {self.url}", interval_s=0.2)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.proc)


def bridge_children(settings: Settings, broker: Mosquitto, log_dir: Path, count: int
                    ) -> list[Child]:
    """`earshot bridge` processes sharing `$share/earshot/...`, for a Supervisor."""
    base = f"earshot-bridge-{uuid.uuid4().hex[:8]}"
    return [Child(f"bridge-{i + 1}", [sys.executable, "-m", "service.cli", "bridge"],
                  {**service_env(settings, EARSHOT_MQTT_URL=broker.url, EARSHOT_LOG_LEVEL="INFO",
                                 EARSHOT_MQTT_CLIENT_ID=bridge_client_id(base, i, count),
                                 EARSHOT_MQTT_SHARE_GROUP="earshot"),
                   "PYTHONPATH": str(ROOT)},
                  log_path=log_dir / f"bridge-{i + 1}.log") for i in range(count)]


def sensor_with_token(conn: psycopg.Connection) -> tuple[UUID, UUID, str]:
    """(machine, logmel-v1 sensor, its ingest token), registered directly."""
    token = security.new_token(security.INGEST_TOKEN_PREFIX)
    row = conn.execute("INSERT INTO machines (name, kind) VALUES (%s, 'bldc') RETURNING id",
                       (f"machine-{uuid.uuid4().hex[:8]}",)).fetchone()
    assert row is not None
    found = conn.execute("INSERT INTO sensors (machine_id, name, embedding_kind, dim, "
                         "token_hash) VALUES (%s, 'mic', 'logmel-v1', 128, %s) RETURNING id",
                         (row[0], security.digest(token))).fetchone()
    assert found is not None
    conn.commit()
    return row[0], found[0], token


@dataclass
class Client:
    """Windows `t0 + i` s for i in range(len(vectors)), sent CHUNK at a time; `acked`
    holds the window times (µs) the service acknowledged."""

    vectors: np.ndarray
    t0_us: int
    acked: list[int] = field(default_factory=list)
    sent_chunks: int = 0
    failovers: int = 0
    halfway: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def chunks(self) -> list[tuple[np.ndarray, np.ndarray]]:
        times = self.t0_us + np.arange(len(self.vectors), dtype=np.int64) * 1_000_000
        return [(times[i:i + CHUNK], self.vectors[i:i + CHUNK])
                for i in range(0, len(self.vectors), CHUNK)]

    def progress(self, chunk: int, total: int, times: np.ndarray) -> None:
        self.acked.extend(int(t) for t in times)
        self.sent_chunks = chunk + 1
        if chunk + 1 >= total // 2:
            self.halfway.set()
        time.sleep(PAUSE_S)


def stream_http(client: Client, apis: list[Api], sensor: UUID, token: str,
                deadline_s: float = 120.0) -> None:
    """Each chunk goes to the next API in turn; one that fails (connection refused or
    reset, 5xx) is skipped until the chunk is acknowledged by another."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": codec.BINARY_TYPE}
    deadline = time.monotonic() + deadline_s
    chunks = client.chunks()
    with httpx.Client(timeout=10.0) as http:
        for n, (times, values) in enumerate(chunks):
            body, turn = codec.encode_binary(times, values), n
            while time.monotonic() < deadline:
                api = apis[turn % len(apis)]
                try:
                    reply = http.post(f"{api.url}/v1/sensors/{sensor}/embeddings",
                                      content=body, headers=headers)
                    if reply.status_code == 200:
                        break
                    assert reply.status_code >= 500 or reply.status_code == 429, reply.text
                except httpx.TransportError:
                    pass
                client.failovers += 1
                turn += 1
                time.sleep(0.05)
            else:
                return
            client.progress(n, len(chunks), times)
    client.done.set()


def stream_mqtt(client: Client, broker: Mosquitto, sensor: UUID) -> None:
    sender = MqttSender(broker.url, sensor)
    chunks = client.chunks()
    try:
        for n, (times, values) in enumerate(chunks):
            sender.send_windows(times, values)  # returns after the broker's PUBACK
            client.progress(n, len(chunks), times)
    finally:
        sender.close()
    client.done.set()
