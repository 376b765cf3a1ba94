"""The moving parts of the soak benchmark: what one sample reads (resident memory of every
Earshot process from /proc, the database's size and the row counts of the tables that
grow with traffic), the alert pulses spread over the whole run, and the paced background
of sensors split over the API processes."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from bench import alert_models, loadgen, stack
from bench.alert_probe import Pulse, run_pulse
from service.alerting.rules import DEFAULT_RULE

US = 1_000_000
# Background windows per request: a minute of a 1 Hz sensor, as the capacity plan assumes
# (the alert pulses send one window per request).
BATCH = 60
# Every table that grows with traffic (docs/scaling.md, "Retention of traffic tables"),
# plus the rollups that outlive raw scores on purpose.
TABLES = ("embeddings", "scores", "ingest_batches", "ingest_errors", "webhook_messages",
          "webhook_deliveries", "webhook_attempts", "jobs", "alerts", "score_rollups",
          "rollup_dirty")
RETAINED_SPAN = "SELECT extract(epoch FROM now() - min(t)) FROM embeddings"


def rss_mib(pid: int) -> float | None:
    """VmRSS of a live process, None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def sample(conn: psycopg.Connection, procs: list[stack.Child], t_s: float) -> dict[str, Any]:
    """One sample: seconds since the load began, load average, RSS per process, database
    size, row counts and how far back the retained embeddings reach."""
    rows = {table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # type: ignore[index]
            for table in TABLES}
    size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    span = conn.execute(RETAINED_SPAN).fetchone()
    return {"t_s": t_s, "load": os.getloadavg()[0],
            "rss_mib": {p.name: rss_mib(p.pid) for p in procs},
            "cpu_s": {**{p.name: stack.proc_cpu_s(p.pid) for p in procs},
                      "database": stack.backend_cpu_s(conn)},
            "alive": {p.name: p.alive() for p in procs},
            "db_bytes": int(size[0]) if size else 0, "rows": rows,
            "retained_s": float(span[0]) if span and span[0] is not None else 0.0}


# Normal windows before each pulse's faults: enough to resolve the alert the machine's
# previous pulse fired (the default rule's clear_windows), so the next one fires anew.
CLEAR_FIRST = DEFAULT_RULE.clear_windows + 1


@dataclass
class Pulses:
    """Every `every_s` the next machine of a fixed pool (round robin) gets normal then
    fault windows (alert_probe's pulse), alternating between the API processes; `began`
    is the load's start. A fixed pool, as a real fleet is: the same machines alert again
    and again, so memory measures the run, not a growing number of machines."""

    urls: list[str]
    machines: list[tuple[str, str, str]]
    shared: alert_models.Shared
    every_s: float
    duration_s: float
    began: float
    sent: list[tuple[float, Pulse]] = field(default_factory=list)  # (offset s, pulse)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="pulses", daemon=True)

    def _run(self) -> None:
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="pulse") as pool:
            for i in range(int(self.duration_s / self.every_s + 0.5)):
                offset = (i + 0.5) * self.every_s
                time.sleep(max(0.0, self.began + offset - time.monotonic()))
                pulse = Pulse(*self.machines[i % len(self.machines)])
                self.sent.append((offset, pulse))
                pool.submit(run_pulse, self.urls[i % len(self.urls)], pulse, self.shared, i,
                            CLEAR_FIRST)

    def start(self) -> Pulses:
        self.thread.start()
        return self


@dataclass
class Background:
    """Every sensor posts its last BATCH windows every BATCH s (1 window/s each),
    its sensors split over the API processes, one generator process per API."""

    urls: list[str]
    sensors: list[tuple[str, str]]
    vectors: np.ndarray
    duration_s: float
    start_at: float  # time.time()
    result: loadgen.Result | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="background", daemon=True)

    def _run(self) -> None:
        first_us = int(self.start_at * US) - BATCH * US
        parts = loadgen.split(self.sensors, len(self.urls))
        jobs = [loadgen.Job(url, "binary", BATCH, part, self.vectors, first_us,
                            self.duration_s, concurrency=16,
                            rate_per_s=len(part) / BATCH, start_at=self.start_at)
                for url, part in zip(self.urls, parts, strict=True)]
        self.result = loadgen.run_parallel(jobs, timeout_s=self.duration_s + 300)

    def start(self) -> Background:
        self.thread.start()
        return self

    def join(self) -> loadgen.Result:
        self.thread.join(timeout=self.duration_s + 360)
        return self.result or loadgen.Result()


def alert_latencies(pulses: Pulses, receiver: stack.Receiver) -> list[tuple[float, float]]:
    """(offset s of the pulse, seconds from its k-th response to the first `alert.firing`
    of its machine that arrived after the pulse began), for every pulse whose webhook
    arrived. A machine's pulses are a whole pool's round apart, far longer than any
    latency, so an arrival is never matched to the wrong pulse."""
    firings: dict[str, list[float]] = {}
    for arrival in receiver.snapshot():
        if arrival.payload.get("type") == "alert.firing":
            firings.setdefault(str(arrival.payload["data"]["machine_id"]), []).append(arrival.at)
    found = []
    for offset, p in pulses.sent:
        if p.completed_at is None or p.started_at is None:
            continue
        after = [at for at in firings.get(p.machine, []) if at >= p.started_at]
        if after:
            found.append((offset, min(after) - p.completed_at))
    return found
