"""Scaling out on this box: scoring windows/s with 1 vs 2 `earshot worker` processes,
machines trained per minute with 1 vs 2 workers (fits in the worker) and with 1 vs 2 Dask
workers, per-core efficiency, and a capacity plan for 10,000 sensors at 1 Hz derived from
the measured per-core costs."""

from __future__ import annotations

import shutil
import time
from contextlib import ExitStack
from typing import Any

import numpy as np
import psycopg

from bench import scaling_setup as setup
from bench import stack
from bench.common import OUT_DIR, Context, Section, Table, fmt

MACHINES = 8
SCORE_ALGORITHM = "pca"  # the alert benchmark's background detector
SCORE_ROUNDS, QUICK_SCORE_ROUNDS = (10_000, 20_000, 40_000), (1_200, 2_400, 4_800)
TRAIN_ALGORITHM, TRAIN_WINDOWS = "gmm", 3000
TRAIN_ROUNDS, QUICK_TRAIN_ROUNDS = (4, 8, 16), (1, 2, 3)
SENSORS_TARGET = 10_000
TIMEOUT_S = 600.0


def _wait_count(conn: psycopg.Connection, sql: str, target: int, *args: Any) -> float:
    """Seconds until `sql` counts `target` (polled every 50 ms)."""
    started = time.monotonic()
    stack.wait_until(lambda: setup.count(conn, sql, *args) >= target, TIMEOUT_S,
                     f"{target} from {sql!r}", interval_s=0.05)
    return time.monotonic() - started


def score_config(settings: Any, conn: psycopg.Connection, workers: int,
                 rounds: tuple[int, ...], log_dir: Any) -> list[dict[str, Any]]:
    """Backlogs of growing size committed at once; seconds until all are scored."""
    rng = np.random.default_rng(workers)
    sensors = setup.scoring_machines(conn, MACHINES, SCORE_ALGORITHM, rng)
    start_us = (int(time.time()) - 30 * 86400) * 1_000_000 + workers * 10**13 // 10**4
    out = []
    with ExitStack() as procs:
        running = setup.start_workers(settings, workers, log_dir)
        for worker in running:
            procs.callback(worker.stop)
        # Warm-up, not measured: each worker imports the ML stack and loads the machines'
        # detectors on first use, and learns the batch size its claims should lock.
        for size in (rounds[0], rounds[0]):
            before = setup.count(conn, setup.COUNT_SCORES)
            start_us = setup.queue_backlog(conn, sensors, size, start_us, rng)
            _wait_count(conn, setup.COUNT_SCORES, before + size)
        for size in rounds:
            before = setup.count(conn, setup.COUNT_SCORES)
            start_us = setup.queue_backlog(conn, sensors, size, start_us, rng)
            cpu0 = stack.backend_cpu_s(conn), sum(w.cpu_seconds() for w in running)
            seconds = _wait_count(conn, setup.COUNT_SCORES, before + size)
            cpu1 = stack.backend_cpu_s(conn), sum(w.cpu_seconds() for w in running)
            out.append({"workers": workers, "windows": size, "seconds": seconds,
                        "rate": size / seconds, "db_cpu_s": cpu1[0] - cpu0[0],
                        "worker_cpu_s": cpu1[1] - cpu0[1]})
    return out


def train_config(settings: Any, conn: psycopg.Connection, label: str, workers: int,
                 dask_workers: int, rounds: tuple[int, ...],
                 log_dir: Any) -> list[dict[str, Any]]:
    """Groups of growing size of training jobs queued at once; seconds until all
    succeeded. With Dask, one worker keeps as many fits in flight as there are Dask
    workers."""
    rng = np.random.default_rng(len(label))
    base_us = (int(time.time()) - 20 * 86400) * 1_000_000
    # The first group warms up (imports in every worker and Dask worker): not measured.
    warm = max(workers, dask_workers)
    machines = [setup.training_machines(conn, k, TRAIN_WINDOWS, TRAIN_ALGORITHM,
                                        base_us + i * 10**10, rng)
                for i, k in enumerate((warm, *rounds))]
    out = []
    with ExitStack() as procs:
        env: dict[str, str] = {}
        if dask_workers:
            address, dask = setup.start_dask(dask_workers, log_dir)
            for child in dask:
                procs.callback(child.stop)
            env = {"EARSHOT_DASK_SCHEDULER": address,
                   "EARSHOT_TRAIN_CONCURRENCY": str(dask_workers)}
        for worker in setup.start_workers(settings, workers, log_dir, **env):
            procs.callback(worker.stop)
        time.sleep(2.0)  # let the workers retire the baselines' unscorable queue rows
        for i, group in enumerate(machines):
            jobs = setup.queue_jobs(conn, group)
            seconds = _wait_count(conn, setup.COUNT_SUCCEEDED, len(jobs), jobs)
            if i == 0:
                continue
            out.append({"config": label, "machines": len(group), "seconds": seconds,
                        "per_min": len(group) / seconds * 60})
    return out


def _row_bytes(conn: psycopg.Connection, table: str) -> float:
    row = conn.execute(f"SELECT hypertable_size('{table}') / greatest(count(*), 1)::float8 "
                       f"FROM {table}").fetchone()
    return float(row[0]) if row else float("nan")


def collect(ctx: Context) -> dict[str, Any]:
    log_dir = OUT_DIR / "logs" / "scaling"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    settings = stack.fresh_database(f"{stack.BENCH_DB}_scaling")
    score_rounds = QUICK_SCORE_ROUNDS if ctx.quick else SCORE_ROUNDS
    train_rounds = QUICK_TRAIN_ROUNDS if ctx.quick else TRAIN_ROUNDS
    try:
        with psycopg.connect(settings.resolved_database_url(), autocommit=True) as conn:
            scoring = [r for n in (1, 2)
                       for r in score_config(settings, conn, n, score_rounds, log_dir)]
            training = []
            for label, workers, dask in (("1 worker", 1, 0), ("2 workers", 2, 0),
                                         ("1 worker + 1 Dask worker", 1, 1),
                                         ("1 worker + 2 Dask workers", 1, 2)):
                training += train_config(settings, conn, label, workers, dask, train_rounds,
                                         log_dir)
            sizes = {t: _row_bytes(conn, t) for t in ("embeddings", "scores")}
    finally:
        stack.drop_database(settings)
    return {"scoring": scoring, "training": training, "row_bytes": sizes}


def _last(rows: list[dict[str, Any]], key: str, value: Any) -> dict[str, Any]:
    return [r for r in rows if r[key] == value][-1]


def capacity(raw: dict[str, Any]) -> dict[str, float]:
    """Per-core costs at the largest backlog of the 1-worker run, scaled to 10,000
    windows/s (10,000 sensors at 1 Hz)."""
    one = _last(raw["scoring"], "workers", 1)
    worker_us = one["worker_cpu_s"] / one["windows"] * 1e6
    db_us = one["db_cpu_s"] / one["windows"] * 1e6
    per_day = SENSORS_TARGET * 86_400
    return {"worker_us_per_window": worker_us, "db_us_per_window": db_us,
            "worker_cores": SENSORS_TARGET * worker_us / 1e6,
            "db_cores_scoring": SENSORS_TARGET * db_us / 1e6,
            "embeddings_gb_day": raw["row_bytes"]["embeddings"] * per_day / 1e9,
            "scores_gb_day": raw["row_bytes"]["scores"] * per_day / 1e9}


def tables(raw: dict[str, Any]) -> list[Table]:
    scoring = raw["scoring"]
    ref = {r["windows"]: r["rate"] for r in scoring if r["workers"] == 1}
    score_rows = [[str(r["workers"]), f"{r['windows']:,}", fmt(r["seconds"]), fmt(r["rate"]),
                   fmt(ref[r["windows"]]), fmt(r["rate"] / ref[r["windows"]]),
                   fmt(r["rate"] / ref[r["windows"]] / r["workers"]),
                   fmt(r["worker_cpu_s"] / r["windows"] * 1e6),
                   fmt(r["db_cpu_s"] / r["windows"] * 1e6)] for r in scoring]
    training = raw["training"]
    base = {r["machines"]: r["per_min"] for r in training if r["config"] == "1 worker"}
    train_rows = [[r["config"], str(r["machines"]), fmt(r["seconds"]), fmt(r["per_min"]),
                   fmt(base[r["machines"]]), fmt(r["per_min"] / base[r["machines"]])]
                  for r in training]
    return [Table("Scoring: a backlog committed at once, until every window is scored "
                  f"({SCORE_ALGORITHM}, {MACHINES} machines, batches of {setup.BATCH})",
                  ["workers", "windows", "seconds", "windows/s", "reference: 1 worker",
                   "speed-up", "per-worker efficiency", "worker CPU µs/window",
                   "DB CPU µs/window"], score_rows),
            Table(f"Training: jobs queued at once ({TRAIN_ALGORITHM}, {TRAIN_WINDOWS:,} "
                  "windows per machine), until all succeeded",
                  ["configuration", "machines", "seconds", "machines/min",
                   "reference: 1 worker", "speed-up"], train_rows)]

# From other measurements on this box (BENCHMARKS.md "Ingest throughput through the API",
# docs/mqtt.md): CPU per window of the API at 60-window binary requests, and what one
# bridge stores with 10 windows per MQTT message.
API_US_PER_WINDOW = 60.0
API_DB_US_PER_WINDOW = 40.0
BRIDGE_WINDOWS_PER_S = 3_600


def plan_text(raw: dict[str, Any]) -> str:
    c = capacity(raw)
    two = _last(raw["scoring"], "workers", 2)
    one = _last(raw["scoring"], "workers", 1)
    workers = max(1, round(c["worker_cores"] * 1.5 + 0.5))
    db_cores = c["db_cores_scoring"] + SENSORS_TARGET * API_DB_US_PER_WINDOW / 1e6
    return f"""
**Capacity plan: 10,000 sensors at 1 Hz (10,000 windows/s)**, from the per-core costs
measured above (1 worker, largest backlog): a worker spends
{fmt(c['worker_us_per_window'])} µs of CPU per window scored and the database
{fmt(c['db_us_per_window'])} µs.

* **Workers**: 10,000 x {fmt(c['worker_us_per_window'])} µs = {fmt(c['worker_cores'])}
  cores of scoring; with 50 % headroom for backfills, alert bursts and webhook delivery,
  **{workers} worker process(es)** (one core each). Adding a worker here gave
  {fmt(two['rate'] / one['rate'])}x the windows/s on this 2-core box, where the
  database shares the same two cores: on separate hosts the workers add up until the
  database saturates.
* **Database CPU**: scoring {fmt(c['db_cores_scoring'])} cores plus ingest about
  {fmt(SENSORS_TARGET * API_DB_US_PER_WINDOW / 1e6)} cores ({API_DB_US_PER_WINDOW:g} µs
  per window at 60-window requests) = **about {fmt(db_cores)} cores** on the primary;
  reads go to a replica.
* **API processes**: {API_US_PER_WINDOW:g} µs per window at 60-window binary requests →
  {fmt(SENSORS_TARGET * API_US_PER_WINDOW / 1e6)} cores: **2-3 API processes** behind a
  load balancer (sensors batching a minute per request; at one window per request the
  cost per window is ~50x higher: batch).
* **MQTT bridges**: about {BRIDGE_WINDOWS_PER_S:,} windows/s per bridge at 10 windows
  per message → **{-(-SENSORS_TARGET * 3 // (BRIDGE_WINDOWS_PER_S * 2))} bridges** with
  50 % headroom (each on its own core).
* **Database size per day**: {fmt(raw['row_bytes']['embeddings'])} bytes per stored
  window and {fmt(raw['row_bytes']['scores'])} per score (measured here, indexes included)
  → **{fmt(c['embeddings_gb_day'])} GB/day of embeddings** and
  {fmt(c['scores_gb_day'])} GB/day of scores; with the default 30-day embedding and 90-day
  score retention that is about {fmt(30 * c['embeddings_gb_day'] + 90 * c['scores_gb_day'])}
  GB on disk.
* **Next bottleneck: storage, not CPU.** The embeddings dominate; lowering
  `EARSHOT_EMBEDDINGS_RETENTION_DAYS` (the detectors train on baselines, which are
  usually days, not months) or a smaller embedding is the lever. After that, the
  primary's write path (one commit per request or MQTT group) and its single WAL.
"""


def run(ctx: Context) -> Section:
    raw = collect(ctx)
    one_rate = _last(raw["scoring"], "workers", 1)["rate"]
    two_rate = _last(raw["scoring"], "workers", 2)["rate"]
    text = f"""
**Method.** A fresh database on the embedded cluster; real `earshot worker` processes
(and a real `dask scheduler` with `dask worker --nthreads 1 --no-nanny` processes) on
127.0.0.1, everything on this one 2-core box, started with `nice`. Scoring: {MACHINES}
machines with an active {SCORE_ALGORITHM} detector; each backlog (random 128-dim
windows in batches of {setup.BATCH}) is committed in one transaction and timed until the
last window is scored (polled every 50 ms). Training: machines with {TRAIN_WINDOWS:,}
baseline windows and a {TRAIN_ALGORITHM} detector; each group of jobs is queued in one
transaction and timed until the last succeeded. Each configuration first runs an
unmeasured warm-up (imports, first model loads). With Dask, one earshot worker keeps as
many fits in flight as there are Dask workers (`EARSHOT_TRAIN_CONCURRENCY`).
**Reference, same run:** the 1-worker figure of the same size. Per-worker efficiency =
speed-up ÷ workers: 1.0 would be perfect scaling; on 2 cores shared with PostgreSQL (and
other tenants of this machine), well below 1 is expected.

Largest backlog: 1 worker {fmt(one_rate)} windows/s, 2 workers {fmt(two_rate)} windows/s
({fmt(two_rate / one_rate)}x).
{plan_text(raw)}"""
    return Section("scaling", "Scaling out: workers, Dask and a 10,000-sensor capacity plan",
                   text, tables(raw), raw)
