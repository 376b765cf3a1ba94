"""The database stops for a while during ingest (a private cluster: the shared one is never
stopped). The API answers fast 503 problems with Retry-After, `/readyz` says why, and it
recovers by itself within 5 s of the database's return, losing no acknowledged window."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import httpx
import numpy as np
import psycopg
import pytest

from tests.faults.procs import (
    ADMIN,
    PROBLEM,
    ApiProcess,
    Attempts,
    Batch,
    PrivateCluster,
    batches,
    make_sensor,
    post_with_retry,
    remove_cluster,
    running_api,
    traversable_tmpdir,
)

DIM = 16
DB_TIMEOUT_S = 2.0
ANSWER_WITHIN_S = DB_TIMEOUT_S + 2.0  # no hang: bounded by the pool timeout
OUTAGE_S = 20.0  # long enough that the pool backs off (service.db.RECONNECT_WINDOW_S)
RECOVERY_S = 5.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    the_cluster = PrivateCluster(traversable_tmpdir("earshot-outage-"))
    try:
        yield the_cluster.create()
    finally:
        remove_cluster(the_cluster)


@pytest.fixture
def api(cluster: PrivateCluster, tmp_path: Path) -> Iterator[ApiProcess]:
    with running_api(cluster.settings, tmp_path / "api.log",
                     EARSHOT_DB_TIMEOUT_S=str(DB_TIMEOUT_S)) as process:
        yield process


class Ingester(threading.Thread):
    """Posts batch after batch, each retried until acknowledged."""

    def __init__(self, url: str, token: str, work: list[Batch]) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.work = url, token, work
        self.acked: list[int] = []
        self.seen = Attempts()
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=ANSWER_WITHIN_S + 5) as client:
            for i, batch in enumerate(self.work):
                if self.stop.is_set():
                    return
                if not post_with_retry(client, self.url, self.token, batch, deadline,
                                       self.seen, pause_s=0.1):
                    return
                self.acked.append(i)
                time.sleep(0.05)


def check_unavailable(response: httpx.Response, elapsed_s: float) -> None:
    assert elapsed_s < ANSWER_WITHIN_S, f"took {elapsed_s:.1f} s"
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert int(response.headers["retry-after"]) >= 1
    assert "database" in response.json()["detail"]


def timed(method: str, url: str, **kwargs: object) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.request(method, url, timeout=ANSWER_WITHIN_S + 5, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - started


def outage_answers(api: ApiProcess, sensor_id: str, token: str, extra: Batch) -> None:
    """While the database is down: every kind of route answers 503 quickly."""
    body_headers = {"Authorization": f"Bearer {token}",
                    "Content-Type": "application/vnd.earshot.windows.v1"}
    for method, path, kwargs in [
        ("POST", f"/v1/sensors/{sensor_id}/embeddings",
         {"content": extra.body, "headers": body_headers}),  # auth in a dependency
        ("GET", "/v1/machines", {"headers": ADMIN}),  # admin key: no lookup, fails in route
        ("GET", f"/v1/sensors/{sensor_id}", {"headers": ADMIN}),
        ("POST", "/v1/machines", {"headers": ADMIN, "json": {"name": "x", "kind": "y"}}),
    ]:
        response, elapsed = timed(method, api.url + path, **kwargs)
        check_unavailable(response, elapsed)
    ready, elapsed = timed("GET", f"{api.url}/readyz")
    assert elapsed < ANSWER_WITHIN_S and ready.status_code == 503, ready.text
    assert ready.json()["database"].startswith("unreachable"), ready.text
    assert httpx.get(f"{api.url}/healthz", timeout=2).status_code == 200  # alive, not ready


def wait_recovered(api: ApiProcess) -> float:
    started = time.monotonic()
    while time.monotonic() - started < RECOVERY_S + 10:
        try:
            ready = httpx.get(f"{api.url}/readyz", timeout=3)
            listed = httpx.get(f"{api.url}/v1/machines", headers=ADMIN, timeout=3)
            if ready.status_code == 200 and listed.status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"no recovery within {RECOVERY_S + 10:g} s: {api.tail()}")


@pytest.mark.slow
def test_database_outage_is_503_then_recovers_without_restart(cluster: PrivateCluster,
                                                              api: ApiProcess) -> None:
    _, sensor_id, token = make_sensor(api.url, DIM)
    *work, extra = batches(41, 50, DIM)
    ingester = Ingester(f"{api.url}/v1/sensors/{sensor_id}/embeddings", token, work)
    ingester.start()
    wait_for_acks(ingester, 5)
    pid = api.proc.pid if api.proc else None
    cluster.stop()
    down_at = time.monotonic()
    try:
        outage_answers(api, sensor_id, token, extra)
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        acked_during = len(ingester.acked)
    finally:
        cluster.start()
    recovery_s = wait_recovered(api)
    print(f"recovered {recovery_s:.2f} s after the database returned")
    assert recovery_s <= RECOVERY_S
    ingester.join(timeout=60)
    assert api.proc is not None and api.proc.pid == pid and api.proc.poll() is None
    assert ingester.acked == list(range(len(work))), api.tail()
    assert 503 in ingester.seen.statuses and set(ingester.seen.statuses) <= {200, 503}
    assert ingester.seen.slowest_s < ANSWER_WITHIN_S
    assert len(ingester.acked) > acked_during  # ingest resumed after the outage
    check_stored(cluster, sensor_id, work)


def wait_for_acks(ingester: Ingester, n: int) -> None:
    deadline = time.monotonic() + 20
    while len(ingester.acked) < n and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(ingester.acked) >= n


def check_stored(cluster: PrivateCluster, sensor_id: str, work: list[Batch]) -> None:
    with psycopg.connect(cluster.settings.resolved_database_url()) as conn:
        rows = conn.execute("SELECT (extract(epoch FROM t) * 1e6)::int8 FROM embeddings "
                            "WHERE sensor_id = %s ORDER BY t", (UUID(sensor_id),)).fetchall()
    expected = np.sort(np.concatenate([b.times_us for b in work]))
    assert np.array_equal(np.array([r[0] for r in rows], dtype=np.int64), expected)
