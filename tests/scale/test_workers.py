"""Three real `earshot worker` processes share the work of one database while windows
stream in and machines train; the leader is SIGKILLed mid-work (while it trains, scores
and delivers). Afterwards every committed window is scored exactly once per model version,
every training job succeeded once (one model version each), every alert's webhook was
delivered at least once, and another worker leads and runs the periodic duties (rollups
catch up with every score)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
import pytest

from service.settings import Settings
from tests.live import wait_until
from tests.scale.procs import Worker, leader_pid
from tests.service.alerting.conftest import add_webhook
from tests.service.alerting.receiver import Receiver
from tests.service.scoring.factories import activate_model, bldc, ingest, make_machine
from tests.service.training.helpers import (
    configure,
    queue_manual_job,
    real_windows,
    recent,
    store_baseline,
)

pytestmark = pytest.mark.scale
SLOW_FIT: dict[str, object] = {"max_steps": 600, "tol": 0.0, "patience": 600}
CHUNK = 5


def fetch(database_url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def one(database_url: str, sql: str, *args: object) -> Any:
    return fetch(database_url, sql, *args)[0][0]


class Stream:
    """Windows into the scoring machines in committed batches (acknowledged = committed):
    healthy, a fault (fires an alert), healthy again (resolves it)."""

    def __init__(self, database_url: str, sensors: list[UUID]) -> None:
        healthy, fault = bldc("healthy", "test"), bldc("propeller")
        self.vectors = np.concatenate([healthy[:60], fault[:40], healthy[60:120]])
        self.start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
        self.database_url, self.sensors = database_url, sensors
        self.halfway, self.done = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.database_url) as conn:
            for offset in range(0, len(self.vectors), CHUNK):
                for sensor in self.sensors:
                    ingest(conn, sensor, self.start + timedelta(seconds=offset),
                           self.vectors[offset:offset + CHUNK], per_batch=CHUNK)
                if offset >= len(self.vectors) // 2:
                    self.halfway.set()
                time.sleep(0.1)
        self.done.set()


def _setup(conn: psycopg.Connection, receiver: Receiver) -> tuple[list[UUID], list[UUID]]:
    scoring = []
    for _ in range(2):
        machine_id, (sensor,) = make_machine(conn)
        activate_model(conn, machine_id)
        scoring.append(sensor)
    _, receiver.secret = add_webhook(conn, receiver.url)
    training = []
    for _ in range(3):
        machine_id, (sensor,) = make_machine(conn)
        store_baseline(conn, machine_id, sensor, real_windows()[:300], recent(3600))
        configure(conn, machine_id, "autoencoder", SLOW_FIT)
        training.append(machine_id)
    return scoring, training


@pytest.mark.slow
def test_three_workers_one_killed_mid_work_lose_and_duplicate_nothing(
        settings: Settings, conn: psycopg.Connection, database_url: str, receiver: Receiver,
        tmp_path: Path) -> None:
    scoring_sensors, training_machines = _setup(conn, receiver)
    workers = [Worker(settings, tmp_path / f"worker-{i}.log") for i in range(3)]
    try:
        for worker in workers:
            worker.wait_started()
        wait_until(lambda: leader_pid(database_url) is not None, 30, "a leader")
        leader = next(w for w in workers if w.pid == leader_pid(database_url))
        jobs = [queue_manual_job(conn, m) for m in training_machines]
        wait_until(lambda: leader.logged("training job ") > 0, 60, "the leader to train")
        stream = Stream(database_url, scoring_sensors)
        stream.thread.start()
        stream.halfway.wait(60)
        leader.kill()
        killed_at = time.monotonic()
        survivors = [w for w in workers if w is not leader]
        wait_until(lambda: leader_pid(database_url) in {w.pid for w in survivors}, 30,
                   "another worker to lead", interval_s=0.05)
        takeover_s = time.monotonic() - killed_at
        assert stream.done.wait(60)
        _wait_for_everything(database_url, scoring_sensors, jobs, receiver)
    finally:
        for worker in workers:
            worker.stop()
    _check(database_url, scoring_sensors, jobs, len(stream.vectors), receiver)
    assert takeover_s < 5.0
    new_leader = next(w for w in survivors if w.logged("leader: elected"))
    attempts = sorted(r[0] for r in fetch(database_url, "SELECT attempts FROM jobs"))
    print(f"\nleader SIGKILLed mid-work; worker {new_leader.pid} led {takeover_s:.2f} s later; "
          f"{len(receiver.acked())} webhooks received; job attempts {attempts}")


def _wait_for_everything(database_url: str, sensors: list[UUID], jobs: list[UUID],
                         receiver: Receiver) -> None:
    def all_scored() -> bool:
        return all(one(database_url, "SELECT count(*) FROM embeddings WHERE sensor_id = %s",
                       s) == one(database_url, "SELECT count(*) FROM scores WHERE "
                                 "sensor_id = %s AND model_version = 1", s) for s in sensors)

    wait_until(all_scored, 180, "every window scored", interval_s=0.5)
    wait_until(lambda: one(database_url, "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND "
                           "state = 'succeeded'", jobs) == len(jobs), 180,
               "every training job done", interval_s=0.5)
    wait_until(lambda: one(database_url, "SELECT count(*) FROM webhook_deliveries WHERE "
                           "state <> 'delivered'") == 0, 120, "every webhook delivered")
    # The new leader's rollups catch up with every score.
    wait_until(lambda: one(database_url, "SELECT count(*) FROM scores") == one(
        database_url, "SELECT coalesce(sum(n), 0) FROM score_rollups WHERE bucket_s = 60"),
        120, "rollups of every score", interval_s=0.5)


def _check(database_url: str, sensors: list[UUID], jobs: list[UUID], streamed: int,
           receiver: Receiver) -> None:
    for sensor in sensors:
        assert one(database_url, "SELECT count(*) FROM embeddings WHERE sensor_id = %s",
                   sensor) == streamed
    # Exactly once per model version, for the streamed and the backfilled windows alike.
    total, distinct = fetch(database_url, "SELECT count(*), count(DISTINCT (sensor_id, t, "
                                          "model_version)) FROM scores")[0]
    assert total == distinct
    unscored = one(database_url, "SELECT count(*) FROM embeddings e JOIN sensors s ON "
                   "s.id = e.sensor_id JOIN models m ON m.machine_id = s.machine_id AND "
                   "m.active AND m.target = 'detector' WHERE NOT EXISTS (SELECT 1 FROM scores "
                   "x WHERE x.sensor_id = e.sensor_id AND x.t = e.t AND "
                   "x.model_version = m.version)")
    assert unscored == 0
    done = fetch(database_url, "SELECT j.state, j.model_version, count(m.version) FROM jobs j "
                 "LEFT JOIN models m ON m.job_id = j.id WHERE j.id = ANY(%s) GROUP BY j.id",
                 jobs)
    assert sorted(done) == [("succeeded", 1, 1)] * len(jobs)  # one model version per job
    alerts = fetch(database_url, "SELECT type, state FROM alerts")
    assert alerts.count(("anomaly", "resolved")) >= len(sensors), alerts
    messages = {row[0] for row in fetch(database_url, "SELECT message_id FROM "
                                                      "webhook_deliveries")}
    got = receiver.acked()
    assert all(r.verified for r in got)
    assert messages and messages <= {r.webhook_id for r in got}
    assert {"alert.firing", "alert.resolved"} <= {r.payload["type"] for r in got}
