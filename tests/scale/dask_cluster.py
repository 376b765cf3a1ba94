"""A real Dask distributed cluster on 127.0.0.1: `dask scheduler` and `dask worker`
processes (no nanny, so the process a test kills is the worker itself)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client

from tests.live import ROOT, START_TIMEOUT_S, free_port, port_open, stop_process, wait_until

DASK = Path(sys.executable).parent / "dask"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EARSHOT_")}
    env["PYTHONPATH"] = str(ROOT)  # the pure fit functions are imported by reference
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return env


class DaskCluster:
    def __init__(self, log_dir: Path, workers: int) -> None:
        self.log_dir = log_dir
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler = self._spawn("scheduler", ["scheduler", "--host", "127.0.0.1",
                                                   "--port", str(self.port), "--no-dashboard"])
        wait_until(lambda: port_open(self.port), START_TIMEOUT_S, "the Dask scheduler")
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        for i in range(workers):
            self.add_worker(f"w{i}")
        self.client = Client(self.address, timeout=30, set_as_default=False)
        self.client.wait_for_workers(workers, timeout=START_TIMEOUT_S)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"dask-{name}.log").open("ab") as log:
            return subprocess.Popen([str(DASK), *args], cwd=ROOT, env=_env(), stdout=log,
                                    stderr=subprocess.STDOUT)

    def add_worker(self, name: str) -> str:
        port = free_port()
        address = f"tcp://127.0.0.1:{port}"
        self.workers[address] = self._spawn(name, [
            "worker", self.address, "--host", "127.0.0.1", "--worker-port", str(port),
            "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", name])
        return address

    def running(self, prefix: str) -> dict[str, list[str]]:
        """Worker address -> keys starting with `prefix` it is computing now."""
        return {worker: [str(k) for k in keys if str(k).startswith(prefix)]
                for worker, keys in self.client.processing().items()
                if any(str(k).startswith(prefix) for k in keys)}

    def kill(self, address: str) -> None:
        proc = self.workers.pop(address)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def close(self) -> None:
        self.client.close()
        for proc in [*self.workers.values(), self.scheduler]:
            stop_process(proc)


@pytest.fixture
def dask_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    cluster = DaskCluster(tmp_path, workers=2)
    try:
        yield cluster
    finally:
        cluster.close()
