"""Training on a real Dask cluster (a `dask scheduler` and two `dask worker` processes):
the claiming worker stores the result; a Dask worker SIGKILLed mid-fit makes the fit rerun
on the other one, and the job still succeeds once, on its first claim, with one model."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from service.settings import Settings
from service.training import runner
from service.training.runner import Outcome
from tests.live import wait_until
from tests.scale.dask_cluster import DaskCluster, dask_cluster  # noqa: F401 (fixture)
from tests.service.training.helpers import (
    configure,
    make_machine,
    queue_manual_job,
    real_windows,
    recent,
    store_baseline,
)

pytestmark = pytest.mark.scale
LONG_FIT: dict[str, object] = {"max_steps": 4000, "tol": 0.0, "patience": 4000}
KEY_PREFIX = "earshot-train-"


def test_a_dask_worker_killed_mid_fit_neither_loses_nor_duplicates_the_job(
        settings: Settings, conn: psycopg.Connection, pool: ConnectionPool,
        dask_cluster: DaskCluster, tmp_path: Path) -> None:  # noqa: F811
    machine_id, (sensor,) = make_machine(conn)
    store_baseline(conn, machine_id, sensor, real_windows()[:300], recent(3600))
    configure(conn, machine_id, "autoencoder", LONG_FIT)
    job_id = queue_manual_job(conn, machine_id)
    on_dask = settings.model_copy(update={"dask_scheduler": dask_cluster.address,
                                          "train_heartbeat_s": 0.5})
    outcomes: list[Outcome | None] = []
    claimer = threading.Thread(target=lambda: outcomes.append(runner.run_one(on_dask, pool)))
    claimer.start()

    wait_until(lambda: dask_cluster.running(KEY_PREFIX), 60, "the fit to run on Dask")
    ((first, keys),) = dask_cluster.running(KEY_PREFIX).items()
    assert keys == [f"{KEY_PREFIX}detector-{job_id}-attempt-1"]
    dask_cluster.kill(first)
    wait_until(lambda: dask_cluster.running(KEY_PREFIX) or outcomes, 60,
               "the fit to rerun on the surviving worker")
    rerun_on = set(dask_cluster.running(KEY_PREFIX))
    claimer.join(timeout=180)

    assert not claimer.is_alive()
    assert outcomes and outcomes[0] is not None
    assert (outcomes[0].state, outcomes[0].version) == ("succeeded", 1), outcomes[0]
    assert rerun_on <= set(dask_cluster.workers)  # only the survivor, never the dead one
    conn.commit()
    assert conn.execute("SELECT state, attempts, model_version FROM jobs WHERE id = %s",
                        (job_id,)).fetchall() == [("succeeded", 1, 1)]
    assert conn.execute("SELECT version, job_id, active FROM models").fetchall() == [
        (1, job_id, True)]


def test_without_a_reachable_cluster_the_job_goes_back_to_the_queue(
        settings: Settings, conn: psycopg.Connection, pool: ConnectionPool) -> None:
    from tests.live import free_port

    machine_id, (sensor,) = make_machine(conn)
    store_baseline(conn, machine_id, sensor, real_windows()[:300], recent(3600))
    configure(conn, machine_id, "iforest")
    job_id = queue_manual_job(conn, machine_id)
    nowhere = settings.model_copy(update={"dask_scheduler": f"tcp://127.0.0.1:{free_port()}"})
    with pytest.raises(runner.ClusterUnavailableError):
        runner.run_one(nowhere, pool)
    conn.commit()
    state, error = conn.execute("SELECT state, error FROM jobs WHERE id = %s",
                                (job_id,)).fetchone() or (None, None)
    assert state == "queued" and "Dask cluster was unavailable" in str(error)
