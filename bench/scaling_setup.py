"""Setup and process helpers of the scaling benchmark: machines written straight to the
database, detectors activated, backlogs and training jobs queued in one transaction each,
and `earshot worker` / `dask` processes (bench.stack.Child: own process group)."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from bench import stack
from bench.common import REPO
from detectors import artifact, registry
from ingest.store import insert_windows
from service.queries import baselines, model_configs
from service.queries import models as model_queries
from service.settings import Settings
from service.training import models as training_models

DIM = 128
BATCH = 60  # windows per ingest batch: a minute of a 1 Hz sensor, as the API benchmarks send
DASK = Path(sys.executable).parent / "dask"
COUNT_SCORES = "SELECT count(*) FROM scores"
COUNT_SUCCEEDED = "SELECT count(*) FROM jobs WHERE id = ANY(%s) AND state = 'succeeded'"


def vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(size=(n, DIM)).astype(np.float32)


def scoring_machines(conn: psycopg.Connection, count: int, algorithm: str,
                     rng: np.random.Generator) -> list[str]:
    """`count` machines of one sensor each, with an active `algorithm` detector; their
    sensor ids."""
    detector = registry.build(algorithm, {}, None).fit(vectors(rng, 2000))
    blob, digest = artifact.dump(detector, {"embedding_kind": "logmel-v1", "dim": DIM})
    sensors = stack.bulk_sensors(conn, count, 1, f"score-{algorithm}-{time.time_ns()}")
    with conn.transaction():
        for machine_id, _, _ in sensors:
            model_queries.lock_versions(conn, UUID(machine_id), "detector")
            version = model_queries.insert_model(conn, {
                "machine_id": machine_id, "target": "detector", "algorithm": algorithm,
                "params": {}, "threshold": float(detector.threshold_), "threshold_config": {},
                "embedding_kind": "logmel-v1", "dim": DIM, "train_start": None,
                "train_end": None, "n_windows": 2000, "score_stats": {}, "metrics": {},
                "fit_seconds": 0.0, "library_versions": artifact.library_versions(),
                "artifact": blob, "artifact_sha256": digest, "job_id": None})
            training_models.activate(conn, UUID(machine_id), "detector", version, 0.0)
    return [sensor for _, sensor, _ in sensors]


def queue_backlog(conn: psycopg.Connection, sensors: list[str], windows: int,
                  start_us: int, rng: np.random.Generator) -> int:
    """`windows` new windows spread over `sensors` in batches of BATCH, committed in ONE
    transaction so the workers see the whole backlog at once; the next start time."""
    per_sensor = windows // len(sensors)
    with conn.transaction():
        for offset in range(0, per_sensor, BATCH):
            n = min(BATCH, per_sensor - offset)
            times = start_us + (offset + np.arange(n, dtype=np.int64)) * 1_000_000
            for sensor in sensors:
                insert_windows(conn, UUID(sensor), times, vectors(rng, n))
    return start_us + per_sensor * 1_000_000


def training_machines(conn: psycopg.Connection, count: int, windows: int, algorithm: str,
                      start_us: int, rng: np.random.Generator) -> list[str]:
    """Machines with `windows` baseline windows each and a manual-activation detector
    config (no backfill scoring competes with the fits)."""
    sensors = stack.bulk_sensors(conn, count, 1, f"train-{start_us}")
    times = start_us + np.arange(windows, dtype=np.int64) * 1_000_000
    lo = datetime.fromtimestamp(start_us / 1e6, UTC)
    hi = datetime.fromtimestamp((start_us + windows * 1_000_000) / 1e6, UTC)
    with conn.transaction():
        for machine_id, sensor, _ in sensors:
            insert_windows(conn, UUID(sensor), times, vectors(rng, windows))
            baselines.insert_baseline(conn, UUID(machine_id), lo, hi, "bench", "bench")
            conn.execute(
                "INSERT INTO model_configs (machine_id, target, algorithm, params, threshold,"
                " activation) VALUES (%s, 'detector', %s, %s, '{}', 'manual')",
                (machine_id, algorithm, Jsonb({})))
    return [machine_id for machine_id, _, _ in sensors]


def queue_jobs(conn: psycopg.Connection, machines: list[str]) -> list[UUID]:
    ids: list[UUID] = []
    with conn.transaction():
        for machine_id in machines:
            row = conn.execute("INSERT INTO jobs (machine_id, target, trigger) VALUES "
                               "(%s, 'detector', 'manual') RETURNING id",
                               (machine_id,)).fetchone()
            assert row is not None
            ids.append(row[0])
        model_configs.notify_scheduler(conn, f"job:{ids[0]}")
    return ids


def count(conn: psycopg.Connection, sql: str, *args: Any) -> int:
    row = conn.execute(sql, args).fetchone()
    return int(row[0]) if row else 0


def start_workers(settings: Settings, n: int, log_dir: Path, **env: str) -> list[stack.Child]:
    merged = {"EARSHOT_LOG_LEVEL": "INFO", "EARSHOT_SCORING_POLL_S": "0.2",
              "EARSHOT_SCHEDULER_POLL_S": "0.2", **env}
    workers = [stack.Child(f"worker-{i}", [str(stack.EARSHOT), "worker"],
                           stack.child_env(settings, **merged),
                           log_dir / f"worker-{i}-{time.time_ns()}.log") for i in range(n)]
    for worker in workers:
        stack.wait_until(lambda w=worker: _started(w), stack.START_TIMEOUT_S,  # type: ignore[misc]
                         "a worker to start", interval_s=0.1)
    return workers


def _started(worker: stack.Child) -> bool:
    worker.check()
    return "scheduler started" in worker.tail(100_000)


def start_dask(n: int, log_dir: Path) -> tuple[str, list[stack.Child]]:
    port = stack.free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {"PYTHONPATH": str(REPO), **stack._SINGLE_THREAD}
    env = {**stack.child_env(Settings(admin_key="x" * 32)), **env}
    procs = [stack.Child("dask-scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1",
                                            "--port", str(port), "--no-dashboard"], env,
                         log_dir / "dask-scheduler.log")]
    procs += [stack.Child(f"dask-worker-{i}", [str(DASK), "worker", address, "--nthreads", "1",
                                               "--no-nanny", "--no-dashboard", "--host",
                                               "127.0.0.1"], env,
                          log_dir / f"dask-worker-{i}.log") for i in range(n)]
    from distributed import Client

    with Client(address, timeout=60, set_as_default=False) as client:
        client.wait_for_workers(n, timeout=120)
    return address, procs
