"""The database stops, or its disk fills up, while sensors upload audio (a private cluster
on a tmpfs of this module's own). Uploads are refused with a fast 503 (507 when the disk is
full) problem and Retry-After; nothing partial is ever stored (no audio without its windows
or the reverse); afterwards the same API process stores them again, each chunk once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from service import pgcluster
from tests.faults.audio_uploads import (
    Upload,
    check_audio_back,
    check_whole_or_nothing,
    duplicate_chunk_rows,
    make_audio_sensor,
    post,
    uploads,
)
from tests.faults.procs import (
    PROBLEM,
    ApiProcess,
    PrivateCluster,
    fill,
    running_api,
    tmpfs_cluster,
)

DB_TIMEOUT_S = 2.0
# Refusals never hang: the pool timeout bounds them (the generous margin is for a box
# shared with other test suites; uploads that succeed are not timed).
ANSWER_WITHIN_S = 30.0
RECOVERY_S = 60.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivateCluster]:
    with tmpfs_cluster("earshot-audio-faults-") as the_cluster:
        yield the_cluster


@pytest.fixture
def api(cluster: PrivateCluster, tmp_path: Path) -> Iterator[ApiProcess]:
    with running_api(cluster.settings, tmp_path / "api.log",
                     EARSHOT_DB_TIMEOUT_S=str(DB_TIMEOUT_S)) as process:
        yield process


class Sender:
    """Sends uploads once each, recording which were acknowledged and what refusals said."""

    def __init__(self, api: ApiProcess, sensor_id: str, token: str) -> None:
        self.api, self.sensor_id, self.token = api, sensor_id, token
        self.acked: list[Upload] = []
        self.refused: list[httpx.Response] = []

    def send(self, upload: Upload) -> int:
        started = time.monotonic()
        with httpx.Client(timeout=120.0) as client:
            response = post(client, self.api.url, self.sensor_id, self.token, upload)
        if response.status_code == 200:
            self.acked.append(upload)
        else:
            elapsed = time.monotonic() - started
            assert elapsed < ANSWER_WITHIN_S, f"refused after {elapsed:.1f} s"
            assert response.status_code in (503, 507), response.text
            assert response.headers["content-type"] == PROBLEM
            assert int(response.headers["retry-after"]) >= 1
            assert "database" in response.json()["detail"]
            self.refused.append(response)
        return response.status_code


def recover(cluster: PrivateCluster, api: ApiProcess) -> None:
    if not pgcluster.is_running(cluster.settings):
        cluster.start()
    deadline = time.monotonic() + RECOVERY_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{api.url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"no recovery in {RECOVERY_S:g} s: {api.tail()}")


def resend_and_check(cluster: PrivateCluster, api: ApiProcess, sender: Sender,
                     work: list[Upload]) -> None:
    """Whole or nothing before the retries; whole and once after them."""
    with psycopg.connect(cluster.settings.resolved_database_url()) as conn:
        held = check_whole_or_nothing(conn, sender.sensor_id, work)
        assert all(held[work.index(u)] for u in sender.acked)
        for upload in work:
            if upload not in sender.acked:
                assert sender.send(upload) == 200
        assert all(check_whole_or_nothing(conn, sender.sensor_id, work))
        assert duplicate_chunk_rows(conn, sender.sensor_id) == 0
    for upload in work:
        check_audio_back(api.url, sender.sensor_id, upload)


@pytest.mark.slow
def test_database_outage_during_audio_uploads_is_503_and_nothing_partial(
        cluster: PrivateCluster, api: ApiProcess) -> None:
    sensor_id, token = make_audio_sensor(api.url, name="outage")
    work = uploads(12, hours_ago=2.0)
    sender = Sender(api, sensor_id, token)
    for upload in work[:4]:
        assert sender.send(upload) == 200
    cluster.stop()
    try:
        for upload in work[4:8]:
            assert sender.send(upload) == 503
    finally:
        cluster.start()
    recover(cluster, api)
    for upload in work[8:]:
        assert sender.send(upload) == 200
    print(f"\noutage: {len(sender.refused)} uploads refused with 503")
    resend_and_check(cluster, api, sender, work)


@pytest.mark.slow
def test_disk_full_during_audio_uploads_is_507_and_nothing_partial(
        cluster: PrivateCluster, api: ApiProcess) -> None:
    sensor_id, token = make_audio_sensor(api.url, name="full")
    work = uploads(40, hours_ago=4.0)
    sender = Sender(api, sensor_id, token)
    for upload in work[:3]:
        assert sender.send(upload) == 200
    balloon = fill(cluster.root)
    sent = 3
    for upload in work[3:]:
        sent += 1
        if sender.send(upload) != 200:
            break
    else:
        pytest.fail("every audio upload succeeded on a full disk")
    statuses = [r.status_code for r in sender.refused]
    assert 507 in statuses or not pgcluster.is_running(cluster.settings), statuses
    balloon.unlink()
    recover(cluster, api)
    print(f"\ndisk full: refused {statuses} after {sent - 1} uploads")
    resend_and_check(cluster, api, sender, work[:sent])
