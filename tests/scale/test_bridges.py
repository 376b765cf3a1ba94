"""Two real `earshot bridge` processes share one MQTT stream through a shared subscription
(`$share/earshot/...`) on a real Mosquitto, supervised by `service.supervisor`. One is
SIGKILLed mid-stream: the supervisor restarts it under the same client id, its persistent
session hands it what it had not acknowledged (Mosquitto 2.0 does not give those to the
other member), and every window the broker acknowledged to the sensor is stored once."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from ingest.client import MqttSender
from service.settings import Settings
from service.supervisor import Child, Supervisor, bridge_client_id
from tests.live import ROOT, START_TIMEOUT_S, Mosquitto, service_env, wait_until
from tests.service.scoring.factories import make_machine

pytestmark = pytest.mark.scale
MESSAGES, PER_MESSAGE = 300, 4


def bridges(settings: Settings, broker: Mosquitto, tmp_path: Path) -> list[Child]:
    import sys

    base = f"earshot-bridge-{tmp_path.name[-8:]}"
    return [Child(f"bridge-{i + 1}", [sys.executable, "-m", "service.cli", "bridge"],
                  {**service_env(settings, EARSHOT_MQTT_URL=broker.url, EARSHOT_LOG_LEVEL="INFO",
                                 EARSHOT_MQTT_CLIENT_ID=bridge_client_id(base, i, 2),
                                 EARSHOT_MQTT_SHARE_GROUP="earshot"),
                   "PYTHONPATH": str(ROOT)},
                  log_path=tmp_path / f"bridge-{i + 1}.log") for i in range(2)]


def messages(child: Child) -> list[str]:
    assert child.log_path is not None
    out = []
    for line in child.log_path.read_text(errors="replace").splitlines():
        try:
            out.append(str(json.loads(line).get("msg", "")))
        except json.JSONDecodeError:
            out.append(line)
    return out


def stored(conn: psycopg.Connection, sensor: object) -> int:
    row = conn.execute("SELECT count(*) FROM embeddings WHERE sensor_id = %s",
                       (sensor,)).fetchone()
    conn.commit()
    return int(row[0]) if row else -1


def test_a_bridge_killed_mid_stream_loses_nothing_the_broker_acknowledged(
        settings: Settings, conn: psycopg.Connection, mosquitto: Mosquitto,
        tmp_path: Path) -> None:
    _, (sensor,) = make_machine(conn)
    supervisor = Supervisor(bridges(settings, mosquitto, tmp_path))
    tending, done = threading.Event(), threading.Event()

    def tend() -> None:
        while not done.is_set():
            supervisor.tend()
            tending.set()
            time.sleep(0.05)

    supervisor.start()
    threading.Thread(target=tend, daemon=True).start()
    first, second = supervisor.children
    try:
        for child in supervisor.children:
            wait_until(lambda c=child: any("subscribed to $share/earshot/" in m  # type: ignore
                                           for m in messages(c)), START_TIMEOUT_S,
                       f"{child.name} to subscribe")
        sender = MqttSender(mosquitto.url, sensor)
        t0 = (int(time.time()) - 3600) * 1_000_000
        rng = np.random.default_rng(0)
        killed_at = 0.0
        for n in range(MESSAGES):
            times = t0 + (n * PER_MESSAGE + np.arange(PER_MESSAGE, dtype=np.int64)) * 1_000_000
            sender.send_windows(times, rng.normal(size=(PER_MESSAGE, 128)).astype(np.float32))
            if n == MESSAGES // 3:
                assert first.proc is not None
                first.proc.send_signal(signal.SIGKILL)
                killed_at = time.monotonic()
        acked_at = time.monotonic()
        wait_until(lambda: stored(conn, sensor) >= MESSAGES * PER_MESSAGE, 120,
                   "every acknowledged window stored", interval_s=0.1)
        complete_s = time.monotonic() - killed_at
        after_last_ack_s = time.monotonic() - acked_at
    finally:
        done.set()
        supervisor.stop()
    assert stored(conn, sensor) == MESSAGES * PER_MESSAGE  # once each
    assert first.restarts == 1 and second.restarts == 0
    resumed = [m for m in messages(first) if "session present: True" in m]
    assert resumed, messages(first)[-10:]
    totals = [int(m.split()[1]) for c in supervisor.children for m in messages(c)
              if m.startswith("stopped: ")]
    assert len(totals) == 2 and all(t > 0 for t in totals)  # the restarted bridge's share
    print(f"\nbridge SIGKILLed after {MESSAGES // 3 + 1} of {MESSAGES} messages; all "
          f"{MESSAGES * PER_MESSAGE} acknowledged windows stored {complete_s:.2f} s after the "
          f"kill, {after_last_ack_s:.2f} s after the last PUBACK")
