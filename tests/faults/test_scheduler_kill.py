"""The real `earshot scheduler` process (scoring worker, alert engine, webhook delivery in
one) is SIGKILLed while a webhook send hangs at a slow receiver and windows are still
being scored; windows keep arriving while it is dead. After a restart every window is
scored exactly once and every due message is delivered, the interrupted one again under
its original webhook-id and body.

(SIGKILL mid-training through real scheduler processes is covered, with the one-version-
per-job check, by tests/service/scheduler/test_processes.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import numpy as np
import psycopg
import pytest

from service.alerting import outbox
from service.settings import Settings
from tests.live import ROOT, service_env, stop_process, wait_until
from tests.service.alerting.conftest import add_webhook
from tests.service.alerting.receiver import Receiver, Reply
from tests.service.scoring.factories import activate_model, bldc, ingest, make_machine

EARSHOT = Path(sys.executable).parent / "earshot"
ENV = {"EARSHOT_WEBHOOK_ALLOW_PRIVATE": "true", "EARSHOT_WEBHOOK_TIMEOUT_S": "2",
       "EARSHOT_WEBHOOK_LEASE_S": "3", "EARSHOT_WEBHOOK_RETRY_BASE_S": "0.2",
       "EARSHOT_WEBHOOK_RETRY_MAX_S": "1", "EARSHOT_SCORING_POLL_S": "0.2",
       "EARSHOT_SCHEDULER_POLL_S": "0.5", "EARSHOT_LOG_LEVEL": "INFO"}


class Scheduler:
    def __init__(self, settings: Settings, log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen([str(EARSHOT), "scheduler"], cwd=ROOT,
                                         env=service_env(settings, **ENV), stdout=out,
                                         stderr=subprocess.STDOUT)
        wait_until(self._started, 60, "the scheduler to start", interval_s=0.1)

    def _started(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"scheduler exited {self.proc.returncode}: {self.tail()}")
        return "scheduler started" in self.log.read_text(errors="replace")

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()[-15:]
        return "\n".join(str(json.loads(x).get("msg")) if x.startswith("{") else x
                         for x in lines)


def scored(conn: psycopg.Connection, machine_id: UUID) -> tuple[int, int]:
    row = conn.execute("SELECT count(*), count(DISTINCT (sensor_id, t, model_version)) "
                       "FROM scores WHERE machine_id = %s", (machine_id,)).fetchone()
    conn.commit()
    assert row is not None
    return int(row[0]), int(row[1])


def delivery_states(conn: psycopg.Connection, webhook_id: UUID) -> dict[str, str]:
    rows = conn.execute("SELECT message_id, state FROM webhook_deliveries WHERE webhook_id = %s",
                        (webhook_id,)).fetchall()
    conn.commit()
    return dict(rows)


@pytest.mark.slow
def test_scheduler_killed_mid_delivery_and_scoring_loses_nothing(
        conn: psycopg.Connection, settings: Settings, receiver: Receiver,
        tmp_path: Path) -> None:
    held = threading.Event()

    def plan(n: int, _id: str) -> Reply:
        if n == 0:  # the first send hangs until its process is dead
            held.set()
            return Reply(200, delay_s=6.0)
        return Reply(200)

    receiver.plan = plan
    machine_id, (sensor,) = make_machine(conn)
    activate_model(conn, machine_id)
    webhook_id, receiver.secret = add_webhook(conn, receiver.url)
    healthy, fault = bldc("healthy", "test"), bldc("propeller")
    # healthy, then a fault (fires an alert), then healthy again (resolves it)
    vectors = np.concatenate([healthy[:60], fault[:40], healthy[60:120]])
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    log = tmp_path / "scheduler.log"

    first = Scheduler(settings, log)
    try:
        ingest(conn, sensor, start, vectors[:60], per_batch=5)
        with conn.transaction():
            for _ in range(3):
                outbox.enqueue_test(conn, webhook_id)
        wait_until(held.is_set, 20, "the first send to reach the receiver")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
    finally:
        stop_process(first.proc)
    interrupted = receiver.snapshot()[0].webhook_id
    assert delivery_states(conn, webhook_id)[interrupted] == "pending"
    # Data keeps arriving while the scheduler is dead: queued, scored after the restart.
    ingest(conn, sensor, start + timedelta(seconds=60), vectors[60:], per_batch=5)
    assert scored(conn, machine_id)[0] < len(vectors)

    second = Scheduler(settings, log)
    try:
        wait_until(lambda: scored(conn, machine_id)[0] >= len(vectors), 60,
                   "every window scored", interval_s=0.2)
        wait_until(lambda: _all_delivered(conn, webhook_id, 5), 60,
                   "every message delivered", interval_s=0.2)
    finally:
        stop_process(second.proc)
    assert scored(conn, machine_id) == (len(vectors), len(vectors)), second.tail()
    messages = set(delivery_states(conn, webhook_id))
    got = receiver.snapshot()
    assert all(r.verified for r in got)
    assert {r.webhook_id for r in receiver.acked()} == messages
    types = {r.payload["type"] for r in receiver.acked()}
    assert {"webhook.test", "alert.firing", "alert.resolved"} <= types, types
    again = [r for r in got if r.webhook_id == interrupted]
    assert len(again) >= 2 and len({r.body for r in again}) == 1


def _all_delivered(conn: psycopg.Connection, webhook_id: UUID, at_least: int) -> bool:
    states = delivery_states(conn, webhook_id)
    return len(states) >= at_least and set(states.values()) == {"delivered"}
