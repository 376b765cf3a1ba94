"""A real `earshot worker` process is SIGKILLed while it trains the fleet embedding: the
run is left `running` with no version stored; another worker process claims it again once
its heartbeat is stale and stores exactly one version (the run's second attempt), so a
killed worker neither loses the run nor leaves a half-stored model."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from service.settings import Settings
from tests.faults.test_scheduler_kill import EARSHOT
from tests.live import ROOT, service_env, stop_process, wait_until
from tests.service.fleet.helpers import fleet_with_audio

ENV = {"EARSHOT_SCHEDULER_POLL_S": "0.2", "EARSHOT_TRAIN_HEARTBEAT_S": "0.5",
       "EARSHOT_TRAIN_STALE_S": "3", "EARSHOT_LOG_LEVEL": "INFO"}
RUNS = "SELECT state, attempts, version, artifact IS NOT NULL FROM fleet_embeddings"


def _worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen([str(EARSHOT), "worker"], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, env=service_env(settings, **ENV))

    def started() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"worker exited {proc.returncode}: {log.read_text()[-2000:]}")
        return "scheduler started" in log.read_text(errors="replace")

    wait_until(started, 90, "the worker to start", interval_s=0.1)
    return proc


def _runs(conn: psycopg.Connection) -> list[tuple[Any, ...]]:
    rows = conn.execute(RUNS).fetchall()
    conn.commit()
    return rows


@pytest.mark.slow
def test_worker_killed_mid_fleet_training_loses_and_duplicates_nothing(
        admin: TestClient, conn: psycopg.Connection, settings: Settings,
        tmp_path: Path) -> None:
    fleet_with_audio(admin)
    assert admin.post("/v1/fleet/embedding/train",
                      json={"max_epochs": 30, "max_windows": 200}).status_code == 202
    log = tmp_path / "worker.log"
    first = _worker(settings, log)
    try:
        wait_until(lambda: _runs(conn)[0][0] == "running", 60, "the worker to claim the run",
                   interval_s=0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        stop_process(first)
    assert _runs(conn) == [("running", 1, None, False)]  # killed mid-fit: nothing stored

    second = _worker(settings, log)
    try:
        wait_until(lambda: _runs(conn)[0][0] != "running", 180,
                   "another worker to take the run over and finish it", interval_s=0.5)
    finally:
        stop_process(second)
    assert _runs(conn) == [("succeeded", 2, 1, True)]
    assert admin.get("/v1/fleet/embedding").json()["latest_version"] == 1
