"""The database's disk fills up, or turns read-only, during ingest (a private cluster on a
small tmpfs of the test's own). Writes fail with a clean 503/507 problem, never a 500 or a
hang; once space (or write access) is back the same API process recovers, every
acknowledged window is there once, and the database is consistent after a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import psycopg
import pytest

from service import pgcluster
from tests.faults.procs import (
    PROBLEM,
    ApiProcess,
    Batch,
    PrivateCluster,
    batches,
    fill,
    make_sensor,
    running_api,
    tmpfs_cluster,
    traversable_tmpdir,
)
from tests.live import ROOT, free_port

DIM = 64
ANSWER_WITHIN_S = 8.0
RECOVERY_S = 30.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with tmpfs_cluster("earshot-disk-") as the_cluster:
        yield the_cluster


@pytest.fixture
def api(cluster: PrivateCluster, tmp_path: Path) -> Iterator[ApiProcess]:
    with running_api(cluster.settings, tmp_path / "api.log", EARSHOT_DB_TIMEOUT_S="2") as process:
        yield process


class Client:
    """Sends each batch once and records what was acknowledged."""

    def __init__(self, api: ApiProcess, sensor_id: str, token: str) -> None:
        self.url = f"{api.url}/v1/sensors/{sensor_id}/embeddings"
        self.headers = {"Authorization": f"Bearer {token}",
                        "Content-Type": "application/vnd.earshot.windows.v1"}
        self.acked: list[Batch] = []
        self.refused: list[httpx.Response] = []

    def send(self, batch: Batch) -> int:
        started = time.monotonic()
        response = httpx.post(self.url, content=batch.body, headers=self.headers,
                              timeout=ANSWER_WITHIN_S + 10)
        elapsed = time.monotonic() - started
        assert elapsed < ANSWER_WITHIN_S, f"no answer for {elapsed:.1f} s"
        if response.status_code == 200:
            self.acked.append(batch)
        else:
            assert response.status_code in (503, 507), response.text
            assert response.headers["content-type"] == PROBLEM
            assert int(response.headers["retry-after"]) >= 1
            assert "database" in response.json()["detail"]
            self.refused.append(response)
        return response.status_code


def until_refused(client: Client, work: Iterator[Batch]) -> None:
    for batch in work:
        if client.send(batch) != 200:
            return
    pytest.fail("every write succeeded on a full disk")


def recover(cluster: PrivateCluster, api: ApiProcess, client: Client,
            work: Iterator[Batch]) -> float:
    """Start the cluster if the fault stopped it; the same API process must then store
    new batches again. Returns the seconds that took."""
    started = time.monotonic()
    if not pgcluster.is_running(cluster.settings):
        cluster.start()
    while time.monotonic() - started < RECOVERY_S:
        try:
            ready = httpx.get(f"{api.url}/readyz", timeout=5).status_code == 200
        except httpx.TransportError:
            ready = False
        if ready and client.send(next(work)) == 200:
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"no recovery in {RECOVERY_S:g} s: {api.tail()}")


def check_consistent(cluster: PrivateCluster, sensor_id: str, client: Client,
                     sent: list[Batch]) -> None:
    cluster.stop()  # a clean restart must come up on what is on disk
    cluster.start()
    with psycopg.connect(cluster.settings.resolved_database_url()) as conn:
        rows = conn.execute("SELECT (extract(epoch FROM t) * 1e6)::int8 FROM embeddings "
                            "WHERE sensor_id = %s", (UUID(sensor_id),)).fetchall()
        queued = conn.execute("SELECT coalesce(sum(n), 0) FROM ingest_batches "
                              "WHERE sensor_id = %s", (UUID(sensor_id),)).fetchone()
    stored = {r[0] for r in rows}
    assert len(stored) == len(rows)
    acked = {int(t) for b in client.acked for t in b.times_us}
    assert acked <= stored, f"{len(acked - stored)} acknowledged windows lost"
    # A batch refused mid-commit may have committed after all (never acknowledged, never
    # promised either way), but never in part: whole sent batches only.
    whole = [b for b in sent if {int(t) for t in b.times_us} <= stored]
    assert sum(len(b.times_us) for b in whole) == len(stored)
    assert queued is not None and queued[0] == len(stored)


@pytest.mark.slow
def test_disk_full_refuses_writes_cleanly_then_recovers(cluster: PrivateCluster,
                                                        api: ApiProcess) -> None:
    _, sensor_id, token = make_sensor(api.url, DIM, name="full")
    sent = batches(400, 200, DIM, seed=1)
    work = iter(sent)
    client = Client(api, sensor_id, token)
    for _ in range(5):
        assert client.send(next(work)) == 200
    balloon = fill(cluster.root)
    until_refused(client, work)
    assert any(r.status_code == 507 for r in client.refused) or \
        not pgcluster.is_running(cluster.settings), [r.text for r in client.refused]
    assert httpx.get(f"{api.url}/healthz", timeout=5).status_code == 200
    balloon.unlink()
    print(f"\ndisk full: refused {[r.status_code for r in client.refused]}; recovered in "
          f"{recover(cluster, api, client, work):.1f} s")
    check_consistent(cluster, sensor_id, client, sent)


@pytest.mark.slow
def test_unwritable_data_dir_refuses_writes_cleanly_then_recovers(cluster: PrivateCluster,
                                                                 api: ApiProcess) -> None:
    _, sensor_id, token = make_sensor(api.url, DIM, name="readonly")
    sent = batches(400, 200, DIM, seed=2)
    work = iter(sent)
    client = Client(api, sensor_id, token)
    for _ in range(5):
        assert client.send(next(work)) == 200
    # The server runs as `postgres`: without write permission on its data directory (a
    # remount would be refused while it holds files open) it can neither create nor
    # open files for writing, WAL segments included.
    pg_dir = str(cluster.settings.pg_dir)
    subprocess.run(["chmod", "-R", "a-w", pg_dir], check=True)
    try:
        until_refused(client, work)
        for _ in range(3):
            client.send(next(work))
    finally:
        subprocess.run(["chmod", "-R", "u+w", pg_dir], check=True)
    print(f"\nunwritable data dir: refused {[r.status_code for r in client.refused]}; recovered in "
          f"{recover(cluster, api, client, work):.1f} s")
    check_consistent(cluster, sensor_id, client, sent)
    assert all("database" in r.json()["detail"] for r in client.refused)


@pytest.fixture
def small_mount() -> Iterator[Path]:
    mount = traversable_tmpdir("earshot-small-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=755", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        mount.rmdir()


def run_earshot(data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EARSHOT_")}
    env.update({"EARSHOT_DATA_DIR": str(data_dir), "EARSHOT_PORT": str(free_port()),
                "EARSHOT_DATABASE_URL": f"postgresql://earshot@127.0.0.1:{free_port()}/x"})
    return subprocess.run([sys.executable, "-m", "service.cli", "run"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("fault", ["read-only", "full"])
def test_earshot_run_on_an_unwritable_data_dir_fails_cleanly(small_mount: Path,
                                                             fault: str) -> None:
    """`earshot run` must store the admin key it generates: if it cannot, it says so and
    stops, leaving no truncated key that a later start would trust."""
    if fault == "read-only":
        subprocess.run(["mount", "-o", "remount,ro", str(small_mount)], check=True)
    else:
        fill(small_mount)
    result = run_earshot(small_mount)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert "cannot store a generated admin key" in result.stderr
    assert "EARSHOT_ADMIN_KEY" in result.stderr
    assert not (small_mount / "admin-key").exists()
