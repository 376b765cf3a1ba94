"""The moving parts of the alert-latency benchmark: alert pulses (normal then fault
windows through the API, timed at the response that completes k-of-n), test webhooks
(the delivery path alone), the paced background of sensors, and a cProfile of the scorer
on one background second."""

from __future__ import annotations

import cProfile
import json
import pstats
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx
import numpy as np
import psycopg

from bench import alert_models, loadgen, stack
from ingest import codec, store
from service.alerting.rules import DEFAULT_RULE
from service.scoring.scorer import Scorer

PULSE_EVERY_S = 0.5
NORMAL_FIRST = 5  # normal windows before the fault, one request each
BG_BATCH = 10  # background windows per request: each sensor posts 10 s of windows
BG_GENERATORS = 2
PINGS = 15  # test webhooks per size, one a second
US = 1_000_000


@dataclass
class Pulse:
    machine: str
    sensor: str
    token: str
    started_at: float | None = None  # monotonic time of the first request
    completed_at: float | None = None  # monotonic time of the k-th anomalous response
    error: str | None = None


def send_one(client: httpx.Client, pulse: Pulse, t_us: int, vector: np.ndarray) -> None:
    body = codec.encode_binary(np.array([t_us], dtype=np.int64), vector[None, :])
    response = client.post(f"/v1/sensors/{pulse.sensor}/embeddings", content=body,
                           headers={"Authorization": f"Bearer {pulse.token}",
                                    "Content-Type": codec.BINARY_TYPE})
    if response.status_code != 200:
        raise stack.StackError(f"ingest answered {response.status_code}: {response.text}")


def run_pulse(url: str, pulse: Pulse, shared: alert_models.Shared, seed: int,
              normal_first: int = NORMAL_FIRST) -> None:
    """`normal_first` normal windows, then k anomalous ones, one request each, stamped on
    consecutive seconds ending now; the k-th response time is the latency's start."""
    rng = np.random.default_rng(seed)
    k = DEFAULT_RULE.k
    normal = shared.normal[rng.integers(len(shared.normal), size=normal_first)]
    fault = shared.fault[rng.integers(len(shared.fault), size=k)]
    pulse.started_at = time.monotonic()
    first = int(time.time() * US) - (normal_first + k) * US
    try:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            for i, vector in enumerate([*normal, *fault]):
                send_one(client, pulse, first + i * US, vector)
            pulse.completed_at = time.monotonic()
    except (httpx.HTTPError, stack.StackError) as exc:
        pulse.error = repr(exc)


def run_pulses(url: str, pulses: list[Pulse], shared: alert_models.Shared) -> None:
    """Start one pulse every PULSE_EVERY_S (in threads, so a slow one delays no other)."""
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="pulse") as pool:
        for i, pulse in enumerate(pulses):
            time.sleep(max(0.0, start + i * PULSE_EVERY_S - time.monotonic()))
            pool.submit(run_pulse, url, pulse, shared, i)


def latencies(pulses: list[Pulse], receiver: stack.Receiver) -> tuple[list[float], int]:
    """Seconds from each pulse's k-th response to its machine's first firing webhook;
    and how many arrivals failed signature verification."""
    first: dict[str, float] = {}
    bad = 0
    for arrival in receiver.snapshot():
        bad += not arrival.verified
        if arrival.payload.get("type") == "alert.firing":
            machine = str(arrival.payload["data"]["machine_id"])
            first.setdefault(machine, arrival.at)
    return [first[p.machine] - p.completed_at for p in pulses
            if p.completed_at is not None and p.machine in first], bad


def ping_latencies(st: stack.Stack, webhook_id: str, receiver: stack.Receiver
                   ) -> list[float]:
    """`POST /v1/webhooks/{id}/test` request -> arrival (matched on the webhook-id the
    response names): the delivery path alone, one ping a second."""
    out = []
    with st.client() as client:
        for _ in range(PINGS):
            # From the request: the message can arrive before the client has read the
            # 202 (the delivery worker wakes on the commit's NOTIFY).
            sent = time.monotonic()
            found = stack.raise_for(client.post(f"/v1/webhooks/{webhook_id}/test"))
            message = found["message_id"]

            def arrived(message: str = message) -> float | None:
                return next((a.at for a in receiver.snapshot() if a.webhook_id == message),
                            None)

            with suppress(stack.StackError):
                stack.wait_until(arrived, 30.0, "a test webhook", interval_s=0.005)
            at = arrived()
            if at is not None:
                out.append(at - sent)
            time.sleep(max(0.0, sent + 1.0 - time.monotonic()))
    return out


@dataclass
class Background:
    """The paced background load, run in a thread while the pulses go out."""

    jobs: list[loadgen.Job]
    result: loadgen.Result | None = None

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="background", daemon=True)

    def _run(self) -> None:
        if self.jobs:
            self.result = loadgen.run_parallel(self.jobs)

    def start(self) -> Background:
        self.thread.start()
        return self

    def join(self) -> loadgen.Result:
        self.thread.join(timeout=600)
        return self.result or loadgen.Result()


def background(url: str, sensors: list[tuple[str, str]], vectors: np.ndarray,
               duration_s: float, start_at: float) -> Background:
    """Each sensor posts its next BG_BATCH windows every BG_BATCH seconds, stamped so the
    newest window is about now: every sensor streams one window a second."""
    parts = loadgen.split(sensors, BG_GENERATORS) if sensors else []
    first_us = int(start_at * US) - BG_BATCH * US
    return Background([loadgen.Job(url, "binary", BG_BATCH, part, vectors, first_us,
                                   duration_s, concurrency=16,
                                   rate_per_s=len(part) / BG_BATCH, start_at=start_at)
                       for part in parts])


QUEUE = "SELECT count(*), coalesce(sum(n), 0) FROM ingest_batches"


def queue_depth(conn: psycopg.Connection) -> tuple[int, int]:
    row = conn.execute(QUEUE).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def queue_one_second(conn: psycopg.Connection, bg: list[tuple[str, str]],
                     vectors: np.ndarray, first_us: int) -> None:
    """One BG_BATCH-window batch per background sensor, queued as ingest queues it."""
    times = first_us + np.arange(BG_BATCH, dtype=np.int64) * US
    for k, (sensor, _) in enumerate(bg):
        with conn.transaction():
            store.insert_windows(conn, UUID(sensor), times,
                                 vectors[(np.arange(BG_BATCH) + k) % len(vectors)])


def profile_scorer(conn: psycopg.Connection, bg: list[tuple[str, str]],
                   vectors: np.ndarray) -> dict[str, Any]:
    """With the scheduler stopped: queue BG_BATCH s of every background sensor, score it
    with a warm `Scorer` (models loaded by a first pass) under cProfile, in-process."""
    scorer = Scorer()
    first_us = int(time.time() * US) - 100 * US
    queue_one_second(conn, bg, vectors, first_us)
    for _ in range(50):  # warm: loads every machine's model once
        if not scorer.step(conn).more:
            break
    queue_one_second(conn, bg, vectors, first_us + BG_BATCH * US)
    profiler, steps = cProfile.Profile(), []
    for _ in range(50):
        started = time.perf_counter()
        profiler.enable()
        result = scorer.step(conn)
        profiler.disable()
        steps.append({"seconds": time.perf_counter() - started, "batches": result.claimed,
                      "windows": result.windows})
        if not result.more:
            break
    if sum(s["windows"] for s in steps) == 0:
        raise stack.StackError("the profiled scorer scored nothing (models not loadable?)")
    return {"steps": steps, "top": top_functions(profiler, sum(s["seconds"] for s in steps))}


def top_functions(profiler: cProfile.Profile, total_s: float, n: int = 14
                  ) -> list[dict[str, Any]]:
    """The project's functions (service/, ingest/, detectors/) with the largest cumulative
    time, and a few library calls that matter (decision functions, SQL execution)."""
    stats = pstats.Stats(profiler)
    rows = []
    for (path, line, name), (_, calls, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        ours = any(f"/{part}/" in path for part in ("service", "ingest", "detectors"))
        if ours or name in ("decision_function", "execute", "copy", "commit"):
            where = path.split("/work/main/")[-1].split("site-packages/")[-1]
            rows.append({"function": f"{where}:{line} {name}", "calls": calls,
                         "cumulative_s": cumulative, "share": cumulative / total_s})
    rows.sort(key=lambda r: -r["cumulative_s"])
    return rows[:n]


def iteration_stats(log: str, window: tuple[float, float]) -> dict[str, float]:
    """Scorer iterations the scheduler logged (DEBUG "scored") within `window`."""
    seconds, batches = [], []
    for line in log.splitlines():
        if '"msg": "scored"' not in line:
            continue
        entry = json.loads(line)
        at = datetime.fromisoformat(entry["ts"]).timestamp()
        if window[0] <= at <= window[1]:
            seconds.append(float(entry["seconds"]))
            batches.append(int(entry["batches"]))
    if not seconds:
        return {"n": 0}
    return {"n": len(seconds), "median_s": float(np.median(seconds)),
            "p95_s": float(np.percentile(seconds, 95)), "max_s": max(seconds),
            "median_batches": float(np.median(batches))}
