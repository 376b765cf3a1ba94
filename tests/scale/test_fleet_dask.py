"""The fleet embedding trains on a real Dask cluster when `EARSHOT_DASK_SCHEDULER` is set,
as detector training does: the fit runs on a Dask worker under its run's key, and the
claiming process stores the one version."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from service.fleet import train as fleet_train
from service.settings import Settings
from tests.live import wait_until
from tests.scale.dask_cluster import DaskCluster, dask_cluster  # noqa: F401 (fixture)
from tests.service.fleet.helpers import fleet_with_audio

pytestmark = pytest.mark.scale
KEY_PREFIX = "earshot-fleet-embedding-"


def test_the_fleet_embedding_fit_runs_on_the_dask_cluster(
        admin: TestClient, settings: Settings, conn: psycopg.Connection,
        pool: ConnectionPool, dask_cluster: DaskCluster) -> None:  # noqa: F811
    fleet_with_audio(admin)
    queued = admin.post("/v1/fleet/embedding/train", json={"max_epochs": 30,
                                                           "max_windows": 200})
    assert queued.status_code == 202, queued.text
    on_dask = settings.model_copy(update={"dask_scheduler": dask_cluster.address})
    outcomes: list[Any] = []
    claimer = threading.Thread(target=lambda: outcomes.append(fleet_train.run_one(on_dask,
                                                                                  pool)))
    claimer.start()
    wait_until(lambda: dask_cluster.running(KEY_PREFIX) or outcomes, 120,
               "the fit to run on Dask")
    running = dask_cluster.running(KEY_PREFIX)
    claimer.join(timeout=300)
    assert not claimer.is_alive() and outcomes and outcomes[0] is not None
    assert outcomes[0][1] == 1
    ((_, keys),) = running.items()
    assert keys == [f"{KEY_PREFIX}{queued.json()['id']}-attempt-1"]
    conn.commit()
    assert conn.execute("SELECT state, attempts, version FROM fleet_embeddings"
                        ).fetchall() == [("succeeded", 1, 1)]
