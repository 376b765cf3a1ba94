"""Real processes for the fault tests: the API (restartable on the same port, with extra
settings), a private PostgreSQL + TimescaleDB cluster that a test may stop, fill or make
read-only without touching the shared one, and an ingesting client that retries."""

from __future__ import annotations

import errno
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

from ingest import codec
from service import pgcluster
from service.migrate import migrate
from service.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.live import ROOT, START_TIMEOUT_S, free_port, service_env, stop_process, wait_until

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PROBLEM = "application/problem+json"
TMPFS_MB = 256


class ApiProcess:
    """`uvicorn service.app:app_from_env` on a fixed port, so a restarted process is found
    where the killed one was."""

    def __init__(self, settings: Settings, log: Path, uvicorn_log_level: str = "warning",
                 **env: str) -> None:
        self.settings, self.log, self.env = settings, log, env
        self.uvicorn_log_level = uvicorn_log_level
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = service_env(self.settings, EARSHOT_PORT=str(self.port), **self.env)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "service.app:app_from_env", "--factory",
                 "--host", "127.0.0.1", "--port", str(self.port),
                 "--log-level", self.uvicorn_log_level],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        # A loaded box (several suites at once) can take tens of seconds to import the app.
        wait_until(self._alive, START_TIMEOUT_S, f"the API on {self.url}")

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"the API exited with {self.proc.returncode}: {self.tail()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no flush, no goodbye."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


class PrivateCluster:
    """A cluster of this test's own under `root`, on a free port: stopping it (or filling
    its disk) cannot disturb the shared test cluster other tests and sessions use."""

    def __init__(self, root: Path, **settings: object) -> None:
        self.root = root
        self.settings = Settings(data_dir=root, db_port=free_port(),  # type: ignore[arg-type]
                                 admin_key=ADMIN_KEY, webhook_allow_private=True,
                                 **settings)

    def start(self) -> None:
        pgcluster.start(self.settings)

    def stop(self) -> None:
        pgcluster.stop(self.settings)

    def create(self) -> PrivateCluster:
        self.start()
        migrate(self.settings)
        return self


def traversable_tmpdir(prefix: str) -> Path:
    """A fresh directory the `postgres` user can reach (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def remove_cluster(cluster: PrivateCluster) -> None:
    try:
        cluster.stop()
    except pgcluster.ClusterError:
        # A cluster whose disk was taken away may refuse a clean stop: end it for good.
        subprocess.run(pgcluster._as_owner([str(pgcluster.PG_BIN / "pg_ctl"), "-D",
                                            str(cluster.settings.pg_dir), "-m", "immediate",
                                            "stop"]), check=False, capture_output=True)
    shutil.rmtree(cluster.root, ignore_errors=True)


@contextmanager
def running_api(settings: Settings, log_path: Path, **env: str) -> Iterator[ApiProcess]:
    """An API process for the block, stopped afterwards (the fault tests' `api` fixture)."""
    process = ApiProcess(settings, log_path, **env)
    process.start()
    try:
        yield process
    finally:
        process.stop()


@contextmanager
def tmpfs_cluster(prefix: str, size_mb: int = TMPFS_MB) -> Iterator[PrivateCluster]:
    """A migrated private cluster on a tmpfs of `size_mb`: a disk the test may fill."""
    mount = traversable_tmpdir(prefix)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=755", "tmpfs",
                    str(mount)], check=True)
    the_cluster = PrivateCluster(mount)
    try:
        yield the_cluster.create()
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(the_cluster.settings.pg_dir)], check=False)
        remove_cluster(the_cluster)  # stops (immediate if need be) before the unmount
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def fill(directory: Path, size_mb: int = TMPFS_MB) -> Path:
    """Take every free byte of the filesystem: a balloon file written until ENOSPC."""
    balloon = directory / "balloon"
    chunk = b"\xa5" * (1 << 20)
    with balloon.open("wb") as out:
        for _ in range(size_mb * 2):
            try:
                out.write(chunk)
                out.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    for size in (4096, 512, 1):  # the last partial chunks
        try:
            with balloon.open("ab") as out:
                while True:
                    out.write(b"\0" * size)
                    out.flush()
        except OSError:
            pass
    return balloon


def make_sensor(url: str, dim: int, name: str = "m") -> tuple[str, str, str]:
    """(machine id, sensor id, ingest token) created through the API."""
    machine = httpx.post(f"{url}/v1/machines", headers=ADMIN, timeout=10,
                         json={"name": name, "kind": "pump"})
    assert machine.status_code == 201, machine.text
    sensor = httpx.post(f"{url}/v1/machines/{machine.json()['id']}/sensors", headers=ADMIN,
                        timeout=10, json={"name": "s", "embedding": {"kind": "vendor-x",
                                                                     "dim": dim}})
    assert sensor.status_code == 201, sensor.text
    return machine.json()["id"], sensor.json()["id"], sensor.json()["ingest_token"]


@dataclass
class Batch:
    times_us: np.ndarray
    values: np.ndarray

    @property
    def body(self) -> bytes:
        return codec.encode_binary(self.times_us, self.values)


def batches(count: int, size: int, dim: int, seed: int = 0) -> list[Batch]:
    """`count` disjoint batches of `size` windows, 1 s apart, ending a minute ago, with
    float32 values of every magnitude (content must round-trip bit for bit)."""
    rng = np.random.default_rng(seed)
    total = count * size
    start = time.time_ns() // 1000 - (total + 60) * 1_000_000
    times = start + np.arange(total, dtype=np.int64) * 1_000_000 + rng.integers(0, 999, total)
    values = (rng.standard_normal((total, dim)) *
              10.0 ** rng.integers(-20, 20, (total, dim))).astype(np.float32)
    return [Batch(times[i * size:(i + 1) * size], values[i * size:(i + 1) * size])
            for i in range(count)]


@dataclass
class Attempts:
    """What a retrying client saw: statuses per batch, and how long each answer took."""

    statuses: list[int] = field(default_factory=list)
    transport_errors: int = 0
    slowest_s: float = 0.0


def post_with_retry(client: httpx.Client, url: str, token: str, batch: Batch,
                    deadline: float, seen: Attempts, pause_s: float = 0.1) -> bool:
    """Send the same batch until it is acknowledged (200) or `deadline`; True if acked.
    Retries on connection errors, 5xx and 429, as a sensor client should."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": codec.BINARY_TYPE}
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            response = client.post(url, content=batch.body, headers=headers)
        except httpx.TransportError:
            seen.transport_errors += 1
            time.sleep(pause_s)
            continue
        seen.slowest_s = max(seen.slowest_s, time.monotonic() - started)
        seen.statuses.append(response.status_code)
        if response.status_code == 200:
            return True
        assert response.status_code >= 500 or response.status_code == 429, response.text
        time.sleep(pause_s)
    return False
