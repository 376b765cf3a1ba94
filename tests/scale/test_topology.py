"""The whole scaled topology at once, with real processes on 127.0.0.1: three `earshot
worker`s training on a Dask cluster (a `dask scheduler`, two `dask worker`s), two
supervised `earshot bridge`s sharing `$share/earshot/...`, two `earshot api`s behind a
client that fails over between them. Machines stream (healthy, a fault that fires an
alert, healthy again) over HTTP and MQTT while three machines train; then ONE PROCESS OF
EACH KIND is SIGKILLed mid-work: the leader worker (while its job fits on Dask), a Dask
worker mid-fit, a bridge mid-stream and an API mid-requests. Afterwards every acknowledged
window (HTTP 200, MQTT PUBACK) is stored once and scored once per model version, every
webhook message was received, every training job succeeded once with one model version,
and another worker leads and runs the periodic duties (its rollups cover every score)."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import numpy as np
import psycopg
import pytest

from service.settings import Settings
from service.supervisor import Supervisor
from tests.live import START_TIMEOUT_S, Mosquitto, wait_until
from tests.scale.dask_cluster import DaskCluster, dask_cluster  # noqa: F401 (fixture)
from tests.scale.procs import Worker, leader_pid
from tests.scale.test_workers import fetch, one
from tests.scale.topology import (
    Api,
    Client,
    bridge_children,
    sensor_with_token,
    stream_http,
    stream_mqtt,
)
from tests.service.alerting.conftest import add_webhook
from tests.service.alerting.receiver import Receiver
from tests.service.scoring.factories import activate_model, bldc
from tests.service.training.helpers import (
    configure,
    queue_manual_job,
    real_windows,
    recent,
    store_baseline,
)

pytestmark = pytest.mark.scale
FIT: dict[str, object] = {"max_steps": 600, "tol": 0.0, "patience": 600}
KEY_PREFIX = "earshot-train-"


@dataclass
class Fleet:
    http: list[tuple[UUID, str]]  # (sensor, ingest token)
    mqtt: UUID
    training: list[UUID]  # machines

    @property
    def streaming(self) -> list[UUID]:
        return [s for s, _ in self.http] + [self.mqtt]


def _setup(conn: psycopg.Connection, receiver: Receiver) -> Fleet:
    streaming = []
    for _ in range(3):  # two HTTP sensors, one MQTT sensor, each with an active detector
        machine_id, sensor, token = sensor_with_token(conn)
        activate_model(conn, machine_id)
        streaming.append((sensor, token))
    _, receiver.secret = add_webhook(conn, receiver.url)
    training = []
    for _ in range(3):
        machine_id, sensor, _ = sensor_with_token(conn)
        store_baseline(conn, machine_id, sensor, real_windows()[:300], recent(3600))
        configure(conn, machine_id, "autoencoder", FIT)
        training.append(machine_id)
    return Fleet(streaming[:2], streaming[2][0], training)


class Tender:
    """The supervisor's loop (as `earshot run` runs it) in a thread."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor, self.done = supervisor, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.done.is_set():
            self.supervisor.tend()
            time.sleep(0.05)

    def start(self) -> None:
        self.supervisor.start()
        self.thread.start()

    def stop(self) -> None:
        self.done.set()
        self.supervisor.stop()


def _vectors() -> np.ndarray:
    healthy, fault = bldc("healthy", "test"), bldc("propeller")
    return np.concatenate([healthy[:60], fault[:40], healthy[60:120]])


def _stream(fleet: Fleet, apis: list[Api], broker: Mosquitto
            ) -> tuple[list[Client], list[threading.Thread]]:
    t0 = int((datetime.now(UTC) - timedelta(minutes=30)).timestamp()) * 1_000_000
    clients = [Client(_vectors(), t0) for _ in range(3)]
    threads = [threading.Thread(target=stream_http, args=(c, apis, s, token), daemon=True)
               for c, (s, token) in zip(clients, fleet.http, strict=False)]
    threads.append(threading.Thread(target=stream_mqtt, args=(clients[2], broker, fleet.mqtt),
                                    daemon=True))
    for thread in threads:
        thread.start()
    return clients, threads


def _started(workers: list[Worker], apis: list[Api], tender: Tender) -> None:
    tender.start()
    for worker in workers:
        worker.wait_started()
    for api in apis:
        api.wait_ready()
    for child in tender.supervisor.children:
        assert child.log_path is not None
        wait_until(lambda p=child.log_path: "subscribed to $share/earshot/" in p.read_text(  # type: ignore[misc]
            errors="replace"), START_TIMEOUT_S, f"{child.name} to subscribe", interval_s=0.2)


def _training_leader(database_url: str, workers: list[Worker], cluster: DaskCluster
                     ) -> Worker:
    """The leader, once it has claimed a job and fits are running on Dask."""
    wait_until(lambda: leader_pid(database_url) is not None, START_TIMEOUT_S, "a leader")
    leader = next(w for w in workers if w.pid == leader_pid(database_url))
    wait_until(lambda: leader.logged("training job ") > 0, 90, "the leader to claim a job")
    wait_until(lambda: cluster.running(KEY_PREFIX), 90, "fits running on Dask")
    return leader


@dataclass
class Kills:
    dask_keys: list[str]
    at: float


def _kill_one_of_each(leader: Worker, cluster: DaskCluster, tender: Tender, api: Api
                      ) -> Kills:
    (address, keys), *_ = cluster.running(KEY_PREFIX).items()
    cluster.kill(address)  # a Dask worker mid-fit
    leader.kill()  # the leader worker, while its job fits on Dask
    bridge = tender.supervisor.children[0].proc
    assert bridge is not None
    bridge.send_signal(signal.SIGKILL)  # a bridge mid-stream (the supervisor restarts it)
    api.kill()  # an API mid-requests (the clients fail over to the other)
    return Kills(keys, time.monotonic())


@pytest.mark.slow
def test_one_sigkill_of_each_kind_loses_and_duplicates_nothing(
        settings: Settings, conn: psycopg.Connection, database_url: str, receiver: Receiver,
        mosquitto: Mosquitto, dask_cluster: DaskCluster, tmp_path: Path) -> None:  # noqa: F811
    began = time.monotonic()
    fleet = _setup(conn, receiver)
    workers = [Worker(settings, tmp_path / f"worker-{i}.log",
                      EARSHOT_DASK_SCHEDULER=dask_cluster.address) for i in range(3)]
    apis = [Api(settings, tmp_path / f"api-{i}.log") for i in range(2)]
    tender = Tender(Supervisor(bridge_children(settings, mosquitto, tmp_path, 2)))
    phases: dict[str, float] = {}
    try:
        _started(workers, apis, tender)
        phases["started"] = time.monotonic() - began
        jobs = [queue_manual_job(conn, m) for m in fleet.training]
        leader = _training_leader(database_url, workers, dask_cluster)
        phases["fitting"] = time.monotonic() - began
        clients, threads = _stream(fleet, apis, mosquitto)
        assert all(c.halfway.wait(60) for c in clients)
        kills = _kill_one_of_each(leader, dask_cluster, tender, apis[0])
        phases["killed"] = time.monotonic() - began
        survivors = {w.pid for w in workers if w is not leader}
        wait_until(lambda: leader_pid(database_url) in survivors, 30, "another leader",
                   interval_s=0.05)
        takeover_s = time.monotonic() - kills.at
        for client, thread in zip(clients, threads, strict=True):
            thread.join(timeout=120)
            assert client.done.is_set(), "a client gave up before every chunk was acknowledged"
        phases["streamed"] = time.monotonic() - began
        _wait_for_everything(database_url, fleet, jobs, phases, began)
    finally:
        tender.stop()
        for process in [*workers, *apis]:
            process.stop()
    _check(database_url, fleet, jobs, clients, receiver)
    assert tender.supervisor.children[0].restarts == 1
    new_leader = next(w for w in workers if w.pid in survivors and w.logged("leader: elected"))
    attempts = sorted(r[0] for r in fetch(database_url, "SELECT attempts FROM jobs"))
    print(f"\nkilled Dask worker mid-fit ({kills.dask_keys}), leader {leader.pid}, bridge-1, "
          f"api-0; worker {new_leader.pid} led {takeover_s:.2f} s later; HTTP failovers "
          f"{[c.failovers for c in clients[:2]]}; {len(receiver.acked())} webhooks received; "
          f"job attempts {attempts}; seconds: " +
          ", ".join(f"{k} {v:.0f}" for k, v in phases.items()))


UNSCORED = ("SELECT count(*) FROM embeddings e JOIN sensors s ON s.id = e.sensor_id "
            "JOIN models m ON m.machine_id = s.machine_id AND m.active AND "
            "m.target = 'detector' WHERE NOT EXISTS (SELECT 1 FROM scores x WHERE "
            "x.sensor_id = e.sensor_id AND x.t = e.t AND x.model_version = m.version)")


def _wait_for_everything(database_url: str, fleet: Fleet, jobs: list[UUID],
                         phases: dict[str, float], began: float) -> None:
    wait_until(lambda: one(database_url, "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND "
                           "state = 'succeeded'", jobs) == len(jobs), 240,
               "every training job done", interval_s=0.5)
    phases["trained"] = time.monotonic() - began
    deadline = time.monotonic() + 120
    while one(database_url, UNSCORED) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert one(database_url, UNSCORED) == 0, _unscored_detail(database_url)
    wait_until(lambda: one(database_url, "SELECT count(*) FROM webhook_deliveries WHERE "
                           "state <> 'delivered'") == 0, 120, "every webhook delivered")
    # The new leader's rollups catch up with every score.
    wait_until(lambda: one(database_url, "SELECT count(*) FROM scores") == one(
        database_url, "SELECT coalesce(sum(n), 0) FROM score_rollups WHERE bucket_s = 60"),
        120, "rollups of every score", interval_s=0.5)
    phases["all done"] = time.monotonic() - began


def _unscored_detail(database_url: str) -> str:
    """Why windows stay unscored: per sensor, and what the ingest queue still holds."""
    per_sensor = fetch(database_url, UNSCORED.replace("SELECT count(*)", "SELECT e.sensor_id, "
                       "m.version, count(*), min(e.t), max(e.t)") + " GROUP BY 1, 2")
    queue = fetch(database_url, "SELECT sensor_id, t_min, t_max, n, committed_at FROM "
                  "ingest_batches ORDER BY id")
    return f"unscored {per_sensor}; queue {queue}"


def _check(database_url: str, fleet: Fleet, jobs: list[UUID], clients: list[Client],
           receiver: Receiver) -> None:
    for sensor, client in zip(fleet.streaming, clients, strict=True):
        stored = [r[0] for r in fetch(database_url, "SELECT (extract(epoch FROM t) * 1e6)"
                                      "::int8 FROM embeddings WHERE sensor_id = %s ORDER BY t",
                                      sensor)]
        assert len(client.acked) == len(client.vectors)
        assert stored == sorted(client.acked)  # every acknowledged window, once
        assert one(database_url, "SELECT count(*) FROM scores WHERE sensor_id = %s AND "
                   "model_version = 1", sensor) == len(stored)
    total, distinct = fetch(database_url, "SELECT count(*), count(DISTINCT (sensor_id, t, "
                                          "model_version)) FROM scores")[0]
    assert total == distinct  # once per model version, streamed and backfilled alike
    assert one(database_url, UNSCORED) == 0
    done = fetch(database_url, "SELECT j.state, j.model_version, count(m.version) FROM jobs j "
                 "LEFT JOIN models m ON m.job_id = j.id WHERE j.id = ANY(%s) GROUP BY j.id",
                 jobs)
    assert sorted(done) == [("succeeded", 1, 1)] * len(jobs)  # one model version per job
    alerts = fetch(database_url, "SELECT type, state FROM alerts")
    assert alerts.count(("anomaly", "resolved")) >= len(fleet.streaming), alerts
    messages = {row[0] for row in fetch(database_url, "SELECT message_id FROM "
                                                      "webhook_deliveries")}
    got = receiver.acked()
    assert all(r.verified for r in got)
    assert messages and messages <= {r.webhook_id for r in got}
    assert {"alert.firing", "alert.resolved"} <= {r.payload["type"] for r in got}
