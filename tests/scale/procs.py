"""Real `earshot worker` processes for the scale tests, with their JSON-lines logs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from service.queries import leader as leader_queries
from service.settings import Settings
from tests.live import ROOT, START_TIMEOUT_S, service_env, stop_process, wait_until

EARSHOT = Path(sys.executable).parent / "earshot"
# Seconds instead of minutes: stale jobs, leases, leader polls and retries.
FAST = {"EARSHOT_WEBHOOK_ALLOW_PRIVATE": "true", "EARSHOT_WEBHOOK_TIMEOUT_S": "2",
        "EARSHOT_WEBHOOK_LEASE_S": "3", "EARSHOT_WEBHOOK_RETRY_BASE_S": "0.2",
        "EARSHOT_WEBHOOK_RETRY_MAX_S": "1", "EARSHOT_SCORING_POLL_S": "0.2",
        "EARSHOT_SCHEDULER_POLL_S": "0.5", "EARSHOT_SCHEDULER_SHUTDOWN_S": "0.3",
        "EARSHOT_TRAIN_HEARTBEAT_S": "0.5", "EARSHOT_TRAIN_STALE_S": "3",
        "EARSHOT_LEADER_POLL_S": "0.5", "EARSHOT_LOG_LEVEL": "INFO"}


class Worker:
    def __init__(self, settings: Settings, log_path: Path, **env: str) -> None:
        self.log_path = log_path
        environment = service_env(settings, **{**FAST, **env})
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen([str(EARSHOT), "worker"], cwd=ROOT, env=environment,
                                         stdout=log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

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

    def wait_started(self, timeout_s: float = START_TIMEOUT_S) -> None:
        def started() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"worker exited {self.proc.returncode}: {self.messages()[-20:]}")
            return self.logged("scheduler started") > 0

        wait_until(started, timeout_s, "a worker to start", interval_s=0.1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        stop_process(self.proc)


def leader_pid(database_url: str) -> int | None:
    """The OS pid of the worker holding the leader lock, None when no one leads."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        name = leader_queries.current_leader(conn)
    return int(name.rsplit(" ", 1)[1]) if name else None
