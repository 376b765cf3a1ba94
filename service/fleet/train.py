"""Fleet embedding runs (a worker loop, every `earshot worker`): claim the open run, read
the fleet's stored audio, fit :class:`detectors.embedding_net.EmbeddingNet` on it (in this
process, or on the Dask cluster when `EARSHOT_DASK_SCHEDULER` is set, like detector
training), and store the weights, their ONNX export and the next version number in one
transaction that re-checks the claim.

Guarded in the database: at most one run is queued or running (a unique partial index),
claims are FOR UPDATE SKIP LOCKED and owned through (id, attempts); a worker that dies
stops heartbeating and another claims the run again, up to `train_max_attempts`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from detectors.errors import DetectorError
from service.fleet.data import FleetSet, collect
from service.queries import fleet_embeddings as q
from service.queries.fleet_embeddings import ClaimedRun
from service.schemas.fleet_embedding import FleetParams
from service.settings import Settings
from service.training import compute
from service.training.errors import TrainingError
from service.training.heartbeat import beating

log = logging.getLogger("earshot.fleet")


def fit(data: FleetSet, params: dict[str, Any]) -> dict[str, Any]:
    """The CPU-heavy part, pure (no database): runs here or on a Dask worker. torch and
    skorch are imported here, so a worker that never trains one does not load them."""
    from detectors import artifact, fleet_embedding
    from detectors.embedding_net import EmbeddingNet

    started = time.perf_counter()
    net = EmbeddingNet(max_epochs=params["max_epochs"],
                       max_train_seconds=params["max_train_seconds"],
                       random_state=params["random_state"],
                       embedding_dim=fleet_embedding.FLEET_DIM,
                       width=fleet_embedding.FLEET_WIDTH)
    net.fit(data.clips, data.labels, data.groups)
    blob = fleet_embedding.dump(net)
    onnx = fleet_embedding.to_onnx(fleet_embedding.load(blob))
    history = net.net_.history
    metrics = {"aux_task": data.aux_task, "machines": data.machines, "sensors": data.sensors,
               "windows_held": data.windows_held, "epochs": net.n_epochs_,
               "validated": net.validated_, "train_loss": float(history[-1, "train_loss"]),
               "valid_loss": float(history[-1, "valid_loss"]) if net.validated_ else None,
               "windows_per_class": data.per_class}
    return {"n_recordings": data.n_recordings, "n_windows": len(data.labels),
            "aux_classes": sorted(data.per_class), "dim": fleet_embedding.FLEET_DIM,
            "metrics": metrics, "fit_seconds": time.perf_counter() - started,
            "library_versions": {**artifact.library_versions(), "format":
                                 fleet_embedding.FORMAT},
            "artifact": blob, "artifact_sha256": hashlib.sha256(blob).hexdigest(),
            "onnx": onnx, "onnx_sha256": hashlib.sha256(onnx).hexdigest()}


def _heartbeat(settings: Settings, pool: ConnectionPool,
               run: ClaimedRun) -> AbstractContextManager[None]:
    return beating(settings, pool, f"fleet embedding run {run.id}",
                   lambda conn: q.heartbeat(conn, run))


def execute(settings: Settings, pool: ConnectionPool, run: ClaimedRun) -> int | None:
    """Train and store one claimed run; its version, or None (failed or lost)."""
    params = FleetParams(**run.params).model_dump()
    try:
        with _heartbeat(settings, pool, run):
            with pool.connection() as conn, conn.transaction():
                data = collect(conn, params["max_windows"])
            model = compute.run(fit, data, params, scheduler=settings.dask_scheduler,
                                key=f"earshot-fleet-embedding-{run.id}-attempt-{run.attempts}")
    except (TrainingError, DetectorError, ValueError) as exc:
        _fail(pool, run, str(exc))
        return None
    except (psycopg.OperationalError, PoolTimeout, compute.ClusterUnavailableError):
        raise  # not the run's fault: it goes stale and is claimed again
    except Exception as exc:  # a run must end, and say why
        log.exception("fleet embedding run %s crashed", run.id)
        _fail(pool, run, f"internal error: {type(exc).__name__}: {exc}")
        return None
    with pool.connection() as conn, conn.transaction():
        version = q.succeed(conn, run, model)
    log.info("fleet embedding run %s: version %s, %d windows, fit %.1fs", run.id, version,
             model["n_windows"], model["fit_seconds"])
    return version


def _fail(pool: ConnectionPool, run: ClaimedRun, error: str) -> None:
    log.info("fleet embedding run %s failed: %s", run.id, error)
    with pool.connection() as conn, conn.transaction():
        q.fail(conn, run, error)


def run_one(settings: Settings, pool: ConnectionPool) -> tuple[ClaimedRun, int | None] | None:
    """Claim and run the open run, if any."""
    with pool.connection() as conn, conn.transaction():
        q.fail_exhausted(conn, settings.train_max_attempts, settings.train_stale_s)
        run = q.claim(conn, settings.train_stale_s)
    if run is None:
        return None
    return run, execute(settings, pool, run)


def run(settings: Settings, pool: ConnectionPool, stop: threading.Event) -> None:
    """Background loop of every worker: poll for a run, train it."""
    while not stop.is_set():
        try:
            ran = run_one(settings, pool)
        except (psycopg.Error, PoolTimeout, compute.ClusterUnavailableError) as exc:
            log.warning("fleet embedding runs: database or Dask cluster unavailable (%s)", exc)
            ran = None
        if ran is None:
            stop.wait(settings.scheduler_poll_s * 2)
