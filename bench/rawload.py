"""A lean HTTP/1.1 load generator for the ingest benchmark: the same requests as
:mod:`bench.loadgen` (same bodies, sensors, tokens, keep-alive, requests in flight), written
straight to asyncio streams and answered by reading the status line, the headers and
`Content-Length` bytes of body.

Why: on this 2-core box the generators share the CPU with the API and PostgreSQL, and
httpx's per-request work (request and response objects, header models, the connection
pool) cost as much CPU per window as the API itself (BENCHMARKS.md, ingest section), so the
measured rate was partly the generator's. A real fleet's sensors spend their own CPU. This
client does only what a request needs: format the head, write, parse the answer.
"""

from __future__ import annotations

import asyncio
import functools
import os
import time
from urllib.parse import urlsplit

import numpy as np

from bench.loadgen import CONTENT_TYPES, Bodies, Job, Result, throughput


class Connection:
    """One keep-alive connection sending one request at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, url: str) -> Connection:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, f"{parts.hostname}:{parts.port}")

    async def post(self, path: str, token: str, content_type: str, body: bytes
                   ) -> tuple[int, bytes]:
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.writer.write(head + body)
        status = int((await self.reader.readline()).split(b" ", 2)[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def _send(conn: Connection, job: Job, bodies: Bodies, result: Result,
                sensor: tuple[str, str], times_us: np.ndarray, rows: np.ndarray) -> None:
    body = bodies.build(times_us, rows)
    started = time.perf_counter()
    status, answer = await conn.post(f"/v1/sensors/{sensor[0]}/embeddings", sensor[1],
                                     CONTENT_TYPES[job.fmt], body)
    result.latencies_s.append(time.perf_counter() - started)
    result.requests += 1
    # The answer is the API's compact JSON ({"accepted":n,...}); every window must be new.
    if status == 200 and answer.startswith(b'{"accepted":%d,' % len(times_us)):
        result.windows += len(times_us)
    else:
        result.errors += 1
        result.error_samples = ([*result.error_samples, f"{status} {answer[:200]!r}"])[:5]


async def _throughput(job: Job, bodies: Bodies, result: Result) -> None:
    """`concurrency` connections, one request in flight on each, until time is up."""
    conns = [await Connection.open(job.url) for _ in range(job.concurrency)]
    try:
        await throughput(job, len(bodies.vectors),
                         [functools.partial(_send, conn, job, bodies, result)
                          for conn in conns])
    finally:
        for conn in conns:
            conn.close()


async def _run(job: Job) -> Result:
    if job.rate_per_s is not None:
        raise ValueError("the raw client runs throughput jobs only; use bench.loadgen")
    bodies = Bodies(job.fmt, job.vectors)
    result = Result()
    await asyncio.sleep(max(0.0, job.start_at - time.time()))
    cpu0 = sum(os.times()[:2])
    started, result.t0 = time.monotonic(), time.time()
    try:
        await _throughput(job, bodies, result)
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        result.errors += 1
        result.error_samples = [*result.error_samples, repr(exc)][:5]
    result.seconds, result.t1 = time.monotonic() - started, time.time()
    result.cpu_s = sum(os.times()[:2]) - cpu0
    return result


def run_job(job: Job) -> Result:
    return asyncio.run(_run(job))
