"""Real `earshot worker` processes against the test database: of two, only the elected
leader fires cron slots and the other takes over within seconds of its SIGKILL, one job
per slot; one stopped or killed mid-training is recovered by the next without a duplicate
version."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest

from service.queries import leader as leader_queries
from service.settings import Settings
from tests.live import ROOT, service_env, stop_process, wait_until
from tests.service.training.helpers import (
    configure,
    make_machine,
    queue_manual_job,
    real_windows,
    recent,
    store_baseline,
)

EARSHOT = Path(sys.executable).parent / "earshot"
START_TIMEOUT_S = 60.0
# A fit long enough to be interrupted reliably (~1-5 s on a 2-core box).
SLOW_FIT: dict[str, object] = {"max_steps": 1000, "tol": 0.0, "patience": 1000}


class Scheduler:
    def __init__(self, settings: Settings, log_path: Path, **env: str) -> None:
        self.log_path = log_path
        environment = service_env(settings, EARSHOT_LOG_LEVEL="INFO", **env)
        environment["PYTHONPATH"] = str(ROOT)  # for the test trigger module
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen([str(EARSHOT), "worker"], cwd=ROOT,
                                         env=environment, stdout=log, stderr=subprocess.STDOUT)

    def messages(self) -> list[str]:
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(str(json.loads(line).get("msg", "")))
            except json.JSONDecodeError:
                out.append(line)
        return out

    def logged(self, fragment: str) -> int:
        return sum(fragment in message for message in self.messages())

    def wait_started(self) -> None:
        def started() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"scheduler exited {self.proc.returncode}: {self.messages()[-20:]}")
            return self.logged("scheduler started") > 0

        wait_until(started, START_TIMEOUT_S, "the scheduler to start", interval_s=0.1)

    def terminate(self) -> float:
        """SIGTERM; seconds until the process exited."""
        started = time.monotonic()
        stop_process(self.proc)
        return time.monotonic() - started

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def fetch(database_url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def trained_machine(conn: psycopg.Connection, algorithm: str,
                    params: dict[str, object] | None = None, **config: object) -> UUID:
    """A machine whose real healthy windows of the last hour are its baseline."""
    machine_id, (sensor_id,) = make_machine(conn)
    store_baseline(conn, machine_id, sensor_id, real_windows(), recent(3600))
    configure(conn, machine_id, algorithm, params, **config)
    return machine_id


@pytest.mark.slow
def test_only_the_leader_fires_slots_and_a_follower_takes_over(
        settings: Settings, conn: psycopg.Connection, database_url: str,
        tmp_path: Path) -> None:
    trained_machine(conn, "ecod", retrain_cron="* * * * *")
    env = {"EARSHOT_RETRAIN_TRIGGER": "tests.service.scheduler.triggers:every_second",
           "EARSHOT_SCHEDULER_SYNC_S": "1", "EARSHOT_LEADER_POLL_S": "0.5",
           "EARSHOT_TRAIN_HEARTBEAT_S": "0.5", "EARSHOT_TRAIN_STALE_S": "3"}
    pair = [Scheduler(settings, tmp_path / f"worker-{i}.log", **env) for i in range(2)]
    try:
        for scheduler in pair:
            scheduler.wait_started()
        wait_until(lambda: sum(s.logged("queued as job") for s in pair) >= 3, 60,
                   "the leader firing slots")
        (leader,) = [s for s in pair if s.logged("leader: elected")]
        (follower,) = [s for s in pair if s is not leader]
        assert follower.logged("queued as job") == 0  # only the leader fires crons
        assert leader_name(database_url) == f"pid {leader.proc.pid}"

        leader.kill()
        killed_at = time.monotonic()
        wait_until(lambda: follower.logged("leader: elected") > 0, 30, "a takeover",
                   interval_s=0.05)
        takeover_s = time.monotonic() - killed_at
        assert leader_name(database_url) == f"pid {follower.proc.pid}"
        wait_until(lambda: follower.logged("queued as job") >= 3, 30,
                   "the new leader firing slots")
        wait_until(lambda: fetch(database_url, "SELECT count(*) FROM jobs "
                                               "WHERE state = 'succeeded'")[0][0] >= 2, 90,
                   "slots trained")
    finally:
        stop_s = [s.terminate() for s in pair if s.proc.poll() is None]
    assert follower.proc.returncode == 0 and max(stop_s) < 10, follower.messages()[-10:]
    assert takeover_s < 3.0, takeover_s

    slots = fetch(database_url, "SELECT slot, state, attempts FROM jobs "
                                "WHERE trigger = 'cron' ORDER BY slot")
    assert len(slots) == len({r[0] for r in slots})  # one job per slot
    assert sum(s.logged("queued as job") for s in pair) == len(slots)
    succeeded = [r for r in slots if r[1] == "succeeded"]
    models = fetch(database_url, "SELECT version, job_id FROM models ORDER BY version")
    assert succeeded and [m[0] for m in models] == list(range(1, len(models) + 1))
    assert len(models) == len(succeeded) == len({m[1] for m in models})  # one per job
    print(f"\n{len(slots)} slots, {len(models)} models; leader taken over "
          f"{takeover_s:.2f} s after its SIGKILL")


def leader_name(database_url: str) -> str:
    """'pid N' of the process holding the leader lock."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        name = leader_queries.current_leader(conn)
    assert name is not None
    return name[name.index("pid "):]


def job_state(database_url: str, job_id: UUID) -> tuple[str, int, str | None]:
    state, attempts, error = fetch(database_url, "SELECT state, attempts, error FROM jobs "
                                                 "WHERE id = %s", job_id)[0]
    return state, attempts, error


def running_in(group: list[Scheduler], database_url: str, job_id: UUID,
               attempt: int) -> Scheduler:
    """The process that claimed `attempt` of the job, once it is training."""
    wait_until(lambda: job_state(database_url, job_id)[:2] == ("running", attempt), 60,
               f"attempt {attempt} to start")
    fragment = f"training job {job_id}: "
    wait_until(lambda: any(s.logged(fragment) and s.logged(f"attempt {attempt})")
                           for s in group), 10, "the claim to be logged")
    return next(s for s in group if s.logged(fragment) and s.logged(f"attempt {attempt})"))


@pytest.mark.slow
def test_stopped_or_killed_mid_training_recovers_without_duplicates(
        settings: Settings, conn: psycopg.Connection, database_url: str,
        tmp_path: Path) -> None:
    machine_id = trained_machine(conn, "autoencoder", SLOW_FIT)
    env = {"EARSHOT_TRAIN_HEARTBEAT_S": "0.5", "EARSHOT_TRAIN_STALE_S": "2",
           "EARSHOT_SCHEDULER_SHUTDOWN_S": "0.3", "EARSHOT_SCHEDULER_POLL_S": "0.5"}
    # Three processes start together (start-up is the slow part); one job.
    group = [Scheduler(settings, tmp_path / f"s{i}.log", **env) for i in range(3)]
    try:
        for scheduler in group:
            scheduler.wait_started()
        job_id = queue_manual_job(conn, machine_id)

        # 1. SIGTERM mid-fit: a clean shutdown puts the job straight back in the queue.
        first = running_in(group, database_url, job_id, 1)
        stop_s = first.terminate()
        assert first.proc.returncode == 0 and stop_s < 10, (stop_s, first.messages()[-10:])
        assert first.logged("released unfinished training job") == 1
        group.remove(first)

        # 2. SIGKILL mid-fit (another process took the released job): nothing is written,
        #    the job stays `running` and its heartbeat stops.
        second = running_in(group, database_url, job_id, 2)
        second.kill()
        assert job_state(database_url, job_id)[:2] == ("running", 2)
        assert fetch(database_url, "SELECT count(*) FROM models") == [(0,)]
        group.remove(second)

        # 3. The survivor finds the stale job, re-queues it and finishes it exactly once.
        (third,) = group
        wait_until(lambda: job_state(database_url, job_id)[0] == "succeeded", 90,
                   "the recovered job to finish", interval_s=0.2)
    finally:
        for scheduler in group:
            scheduler.terminate()
    assert job_state(database_url, job_id) == ("succeeded", 3, None)
    assert third.logged("stopped sending heartbeats") == 1
    assert fetch(database_url, "SELECT version, job_id, active FROM models") == [
        (1, job_id, True)]
    assert fetch(database_url, "SELECT model_version FROM jobs WHERE id = %s",
                 job_id) == [(1,)]
    print(f"\nSIGTERM during a fit: exit in {stop_s:.2f} s")
