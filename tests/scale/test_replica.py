"""A real streaming replica of the embedded cluster (pg_basebackup -R -X stream) serves
the API's heavy reads (EARSHOT_DATABASE_READ_URL) and the dashboard's (the machine page's
timeline, the fleet page): with replay paused the reads show the replica's older state and
/readyz reports the lag in bytes; resumed, both catch up."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient

from service import pgcluster
from service.app import create_app
from tests.conftest import ADMIN_KEY
from tests.faults.procs import PrivateCluster, remove_cluster, traversable_tmpdir
from tests.live import free_port, wait_until
from tests.service.scoring.factories import copy_scores, make_machine, series
from tests.service.ui.helpers import sign_in

pytestmark = pytest.mark.scale


class Replica:
    """A hot standby of `primary` in its own directory, on its own port."""

    def __init__(self, primary: PrivateCluster, root: Path) -> None:
        self.dir, self.port = root / "replica", free_port()
        password = (primary.settings.data_dir / "db-password").read_text().strip()
        self.url = primary.settings.resolved_database_url().replace(
            f":{primary.settings.db_port}/", f":{self.port}/")
        env = {**os.environ, "PGPASSWORD": password}
        self.dir.mkdir(mode=0o700)
        pgcluster._chown_for_postgres(self.dir)
        subprocess.run(pgcluster._as_owner([
            str(pgcluster.PG_BIN / "pg_basebackup"), "-h", "127.0.0.1", "-p",
            str(primary.settings.db_port), "-U", "earshot", "-D", str(self.dir), "-R",
            "-X", "stream", "-c", "fast"]), env=env, check=True, capture_output=True)
        # The copied configuration keeps the primary's port and socket directory.
        subprocess.run(pgcluster._as_owner([
            str(pgcluster.PG_BIN / "pg_ctl"), "-D", str(self.dir), "-w", "-t", "60", "-l",
            str(self.dir / "server.log"), "-o", f"-p {self.port} -k {self.dir / 'run'}",
            "start"]), check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run(pgcluster._as_owner([str(pgcluster.PG_BIN / "pg_ctl"), "-D",
                                            str(self.dir), "-m", "fast", "-w", "stop"]),
                       check=False, capture_output=True)


@pytest.fixture
def primary_and_replica() -> Iterator[tuple[PrivateCluster, Replica]]:
    root = traversable_tmpdir("earshot-replica-")
    primary = PrivateCluster(root).create()
    replica = Replica(primary, root)
    try:
        yield primary, replica
    finally:
        replica.stop()
        remove_cluster(primary)


def page_timeline_windows(client: TestClient, machine_id: object) -> int:
    """Windows in the timeline the machine page embeds for its first draw."""
    html = client.get(f"/machines/{machine_id}", params={"span": 7200}).text
    found = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html,
                      re.S)
    assert found, html[:500]
    return sum(b["n"] for b in json.loads(found.group(1))["timeline"]["buckets"])


def fleet_page_ratio(client: TestClient) -> str:
    """The one machine's newest score over its threshold as the fleet page shows it."""
    found = re.findall(r"\((\d[\d.]*)\u00d7\)", client.get("/").text)
    assert len(found) == 1, found
    return str(found[0])


def test_reads_come_from_the_replica_and_readyz_reports_its_lag(
        primary_and_replica: tuple[PrivateCluster, Replica]) -> None:
    primary, replica = primary_and_replica
    # no_data_s: the fleet page shows these hour-old scores as the newest.
    settings = primary.settings.model_copy(update={"database_read_url": replica.url,
                                                   "health_no_data_s": 7200.0})
    with psycopg.connect(settings.resolved_database_url()) as conn:
        machine_id, (sensor,) = make_machine(conn)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
        copy_scores(conn, machine_id, sensor, series(start, 1, 100), np.full(100, 0.1), 0.5)
    scores_url = f"/v1/machines/{machine_id}/scores"
    params = {"start": (start - timedelta(minutes=1)).isoformat(),
              "end": (start + timedelta(hours=1)).isoformat(), "limit": 10_000}
    app = create_app(settings)
    with TestClient(app) as client, psycopg.connect(replica.url, autocommit=True) as standby:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"

        def served() -> int:
            reply = client.get(scores_url, params=params)
            return len(reply.json()["items"]) if reply.status_code == 200 else -1

        wait_until(lambda: served() == 100, 30, "the replica to replay the first scores")
        sign_in(client, ADMIN_KEY)
        standby.execute("SELECT pg_wal_replay_pause()")
        with psycopg.connect(settings.resolved_database_url()) as conn:
            copy_scores(conn, machine_id, sensor, series(start + timedelta(seconds=100), 1, 50),
                        np.full(50, 0.9), 0.5)
        assert served() == 100  # the replica's (older) state, not the primary's
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready"
        assert ready["replica"]["status"] == "ok" and ready["replica"]["in_recovery"]
        assert ready["replica"]["lag_bytes"] > 0
        timeline = client.get(f"/v1/machines/{machine_id}/timeline", params={
            "start": params["start"], "end": params["end"], "step": "30s"})
        assert timeline.status_code == 200
        assert sum(b["n"] for b in timeline.json()["buckets"]) == 100
        assert client.get(f"/v1/machines/{machine_id}/predictions",
                          params=params).status_code == 200
        # The dashboard reads the same way: the machine page's first timeline and the
        # fleet page (newest score 0.1 of threshold 0.5 on the replica, 0.9 on the primary).
        assert page_timeline_windows(client, machine_id) == 100
        assert fleet_page_ratio(client) == "0.2"
        assert client.get("/v1/fleet").json()["items"][0]["latest_score"] == 0.1

        standby.execute("SELECT pg_wal_replay_resume()")
        wait_until(lambda: served() == 150, 30, "the replica to catch up")
        assert page_timeline_windows(client, machine_id) == 150
        assert fleet_page_ratio(client) == "1.8"
        wait_until(lambda: client.get("/readyz").json()["replica"]["lag_bytes"] == 0, 30,
                   "the lag to reach zero")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            standby.execute("DELETE FROM scores")
