"""Load generators for the service benchmarks: processes that POST embedding batches to
`/v1/sensors/{id}/embeddings` over httpx (asyncio, keep-alive), either as fast as the API
answers (throughput) or paced to a fixed request rate (a background of sensors at 1 Hz).

Bodies are built from real logmel-v1 vectors without per-float Python work at send time
(JSON and NDJSON reuse each vector's text), so the generator's own cost stays small next
to the server's; what it does cost is measured (`cpu_s`) and reported.
"""

from __future__ import annotations

import asyncio
import functools
import json
import multiprocessing
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import numpy as np

from ingest import codec

CONTENT_TYPES = {"json": codec.JSON_TYPE, "ndjson": codec.NDJSON_TYPE,
                 "binary": codec.BINARY_TYPE}
US = 1_000_000


@dataclass(frozen=True)
class Job:
    """One generator process's share: its sensors, what to send and for how long.

    Sensor k's batch j holds windows at `first_us + (j * batch + i) * 1 s` (i < batch).
    With `rate_per_s` set, requests are paced to that rate (a live stream: pass
    rate = sensors / batch and a `first_us` of about now - batch seconds)."""

    url: str
    fmt: str
    batch: int
    sensors: list[tuple[str, str]]  # (sensor id, ingest token)
    vectors: np.ndarray
    first_us: int
    duration_s: float
    concurrency: int = 8
    max_requests: int = 1_000_000
    rate_per_s: float | None = None
    start_at: float = 0.0  # time.time() to begin at, so parallel processes start together


@dataclass
class Result:
    requests: int = 0
    windows: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cpu_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    late_s: float = 0.0  # how far the paced schedule fell behind at the end
    t0: float = float("inf")  # time.time() of the first request
    t1: float = 0.0  # time.time() when the last answer arrived

    def merge(self, other: Result) -> Result:
        """Two processes' results; `seconds` spans both, from the first start to the last
        end, so a process that started late cannot inflate the rate."""
        t0, t1 = min(self.t0, other.t0), max(self.t1, other.t1)
        return Result(self.requests + other.requests, self.windows + other.windows,
                      self.errors + other.errors, (self.error_samples + other.error_samples)[:5],
                      t1 - t0, self.cpu_s + other.cpu_s, self.latencies_s + other.latencies_s,
                      max(self.late_s, other.late_s), t0, t1)

    @property
    def windows_per_s(self) -> float:
        return self.windows / self.seconds if self.seconds > 0 else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q)) * 1000 if self.latencies_s else \
            float("nan")


class Bodies:
    """Request bodies of one format built from pre-encoded vector text."""

    def __init__(self, fmt: str, vectors: np.ndarray) -> None:
        self.fmt, self.vectors = fmt, np.ascontiguousarray(vectors, dtype=np.float32)
        self.text = [json.dumps([float(x) for x in row]) for row in self.vectors] \
            if fmt != "binary" else []

    def build(self, times_us: np.ndarray, rows: np.ndarray) -> bytes:
        if self.fmt == "binary":
            return codec.encode_binary(times_us, self.vectors[rows])
        items = [f'{{"t":"{codec.to_rfc3339(int(t))}","v":{self.text[r]}}}'
                 for t, r in zip(times_us.tolist(), rows.tolist(), strict=True)]
        if self.fmt == "ndjson":
            return ("\n".join(items) + "\n").encode()
        return ('{"windows":[' + ",".join(items) + "]}").encode()


async def _send(client: httpx.AsyncClient, job: Job, bodies: Bodies, result: Result,
                sensor: tuple[str, str], times_us: np.ndarray, rows: np.ndarray) -> None:
    body = bodies.build(times_us, rows)
    started = time.perf_counter()
    try:
        response = await client.post(f"/v1/sensors/{sensor[0]}/embeddings", content=body,
                                     headers={"Authorization": f"Bearer {sensor[1]}",
                                              "Content-Type": CONTENT_TYPES[job.fmt]})
    except httpx.HTTPError as exc:
        result.errors += 1
        result.error_samples = ([*result.error_samples, repr(exc)])[:5]
        return
    result.latencies_s.append(time.perf_counter() - started)
    result.requests += 1
    if response.status_code == 200 and response.json()["accepted"] == len(times_us):
        result.windows += len(times_us)
    else:
        result.errors += 1
        result.error_samples = ([*result.error_samples, response.text[:200]])[:5]


Send = Callable[[tuple[str, str], np.ndarray, np.ndarray], Awaitable[None]]


async def throughput(job: Job, n_vectors: int, senders: list[Send]) -> None:
    """One loop per sender (a request in flight each), each taking the next (sensor,
    batch) until time is up; `sender(sensor, times_us, vector rows)` sends one request."""
    counter = iter(range(job.max_requests))
    deadline = time.monotonic() + job.duration_s

    async def loop(send: Send) -> None:
        for k in counter:
            if time.monotonic() >= deadline:
                return
            sensor_index, j = k % len(job.sensors), k // len(job.sensors)
            offsets = j * job.batch + np.arange(job.batch, dtype=np.int64)
            await send(job.sensors[sensor_index], job.first_us + offsets * US,
                       (offsets + sensor_index * 7) % n_vectors)

    await asyncio.gather(*(loop(send) for send in senders))


async def _paced(job: Job, bodies: Bodies, client: httpx.AsyncClient, result: Result) -> None:
    """Request k is due at start + k / rate (open loop, at most `concurrency` in flight).
    Each sensor sends its next `batch` consecutive 1 s windows per cycle, so at
    rate = sensors / batch every sensor streams one window per second."""
    assert job.rate_per_s is not None
    slots = asyncio.Semaphore(job.concurrency)
    start = time.monotonic()
    tasks: set[asyncio.Task[None]] = set()
    n_vec = len(bodies.vectors)
    k = 0
    for k in range(job.max_requests):
        due = start + k / job.rate_per_s
        if due - start >= job.duration_s:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await slots.acquire()
        sensor_index, cycle = k % len(job.sensors), k // len(job.sensors)
        offsets = cycle * job.batch + np.arange(job.batch, dtype=np.int64)
        task = asyncio.create_task(_send(client, job, bodies, result, job.sensors[sensor_index],
                                         job.first_us + offsets * US,
                                         (offsets + sensor_index * 13) % n_vec))
        task.add_done_callback(tasks.discard)
        task.add_done_callback(lambda _t: slots.release())
        tasks.add(task)
    result.late_s = max(0.0, time.monotonic() - (start + k / job.rate_per_s))
    if tasks:
        await asyncio.gather(*tasks)


async def _run(job: Job) -> Result:
    bodies = Bodies(job.fmt, job.vectors)
    result = Result()
    limits = httpx.Limits(max_connections=job.concurrency,
                          max_keepalive_connections=job.concurrency)
    async with httpx.AsyncClient(base_url=job.url, timeout=60.0, limits=limits) as client:
        await asyncio.sleep(max(0.0, job.start_at - time.time()))
        cpu0 = sum(os.times()[:2])
        started, result.t0 = time.monotonic(), time.time()
        if job.rate_per_s is None:
            send = functools.partial(_send, client, job, bodies, result)
            await throughput(job, len(bodies.vectors), [send] * job.concurrency)
        else:
            await _paced(job, bodies, client, result)
    result.seconds, result.t1 = time.monotonic() - started, time.time()
    result.cpu_s = sum(os.times()[:2]) - cpu0
    return result


def run_job(job: Job) -> Result:
    return asyncio.run(_run(job))


def split(sensors: list[tuple[str, str]], parts: int) -> list[list[tuple[str, str]]]:
    return [sensors[i::parts] for i in range(parts) if sensors[i::parts]]


def run_parallel(jobs: list[Job], timeout_s: float = 600.0,
                 runner: Callable[[Job], Result] = run_job) -> Result:
    """Run each job in its own spawned process at once (with `runner`: this module's httpx
    client or `bench.rawload.run_job`); their results merged."""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(len(jobs)) as pool:
        try:
            parts = pool.map_async(runner, jobs).get(timeout=timeout_s)
        finally:
            pool.terminate()
            pool.join()
    merged = Result()
    for part in parts:
        merged = merged.merge(part)
    return merged
