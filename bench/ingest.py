"""Ingest throughput through the running API (JSON, NDJSON, binary) against raw binary COPY
of the same rows into the same hypertable from one Python process."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np
import psycopg

from bench import ingest_levers, ingest_mqtt, loadgen, rawload, stack
from bench.common import Context, Section, Table, fmt, load_16k, machine_recordings
from bench.ingest_report import (
    BATCH,
    FORMATS,
    SWEEP_SENSORS,
    TARGET_RATIO,
    TEXT,
    growth_table,
    main_table,
    mqtt_table,
    sweep_table,
    verdict,
)
from ingest import codec, store
from ingest.features import embed
from ingest.pgcopy import copy_payload

SIZES = (10, 100, 1000)
QUICK_SIZES = (10, 100)
SWEEP = (1, 10, 60, 600)  # windows per request, binary, at SWEEP_SENSORS sensors
MQTT_PER_MESSAGE = (1, 10, 60)  # windows per MQTT message, at SWEEP_SENSORS sensors
PER_MACHINE = 10
GENERATORS = 2
CONCURRENCY = 8  # requests in flight per generator process
REF_ROWS = 60_000
REF_CHUNK = 10_000  # rows per COPY statement and commit
REF_REPEATS = 3
STORE_REPEATS = 40
COPY_SQL = "COPY embeddings (sensor_id, t, v) FROM STDIN WITH (FORMAT binary)"
COUNT_ROWS = "SELECT count(*) FROM embeddings"
US = 1_000_000


@dataclass
class Clock:
    """Hands out disjoint time ranges (whole days, in the past the API accepts)."""

    next_us: int

    def take(self) -> int:
        first = self.next_us
        self.next_us += 86_400 * US
        return first


def real_vectors(limit: int = 400) -> np.ndarray:
    """logmel-v1 windows of the data dir's machine recordings, in manifest order."""
    parts, total = [], 0
    for path in machine_recordings():
        parts.append(embed(load_16k(path), 16_000).astype(np.float32))
        total += len(parts[-1])
        if total >= limit:
            break
    return np.concatenate(parts)[:limit]


def reference_rows(sensors: list[UUID], first_us: int, vectors: np.ndarray
                   ) -> list[tuple[UUID, np.ndarray, np.ndarray]]:
    """REF_ROWS rows spread over `sensors` as the API cells spread them: per sensor,
    consecutive 1 s windows."""
    per = max(1, REF_ROWS // len(sensors))
    offsets = np.arange(per, dtype=np.int64)
    return [(s, first_us + offsets * US, vectors[(offsets + k * 7) % len(vectors)])
            for k, s in enumerate(sensors)]


def _row_chunks(rows: list[tuple[UUID, np.ndarray, np.ndarray]]
                ) -> Iterator[list[tuple[UUID, datetime, bytes]]]:
    epoch, chunk = datetime(1970, 1, 1, tzinfo=UTC), []
    for sensor, times, values in rows:
        for t, v in zip(times.tolist(), values, strict=True):
            chunk.append((sensor, epoch + timedelta(microseconds=t), v.tobytes()))
            if len(chunk) >= REF_CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def copy_write_row(conn: psycopg.Connection, rows: list[tuple[UUID, np.ndarray, np.ndarray]]
                   ) -> int:
    """psycopg's straightforward client: one `write_row` per row, binary format, one COPY
    and commit per REF_CHUNK rows (building the row tuples is part of the client's work)."""
    done = 0
    for chunk in _row_chunks(rows):
        with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
            copy.set_types(["uuid", "timestamptz", "bytea"])
            for row in chunk:
                copy.write_row(row)
        conn.commit()
        done += len(chunk)
    return done


def copy_numpy(conn: psycopg.Connection, rows: list[tuple[UUID, np.ndarray, np.ndarray]]
               ) -> int:
    """The project's numpy encoder (`ingest.pgcopy.copy_payload`, one payload per sensor),
    payloads joined into one COPY and commit per REF_CHUNK rows."""
    done, pending, pending_rows = 0, [], 0
    for sensor, times, values in rows:
        pending.append(copy_payload(sensor, times, values))
        pending_rows += len(times)
        if pending_rows >= REF_CHUNK:
            _copy_raw(conn, pending)
            done, pending, pending_rows = done + pending_rows, [], 0
    if pending:
        _copy_raw(conn, pending)
    return done + pending_rows


def _copy_raw(conn: psycopg.Connection, payloads: list[bytes]) -> None:
    with conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
        for i, payload in enumerate(payloads):
            # One stream: header of the first payload, trailer of the last.
            start = 19 if i else 0
            end = len(payload) if i == len(payloads) - 1 else len(payload) - 2
            copy.write(payload[start:end])
    conn.commit()


def measure_reference(conn: psycopg.Connection, sensors: list[UUID], clock: Clock,
                      vectors: np.ndarray, how: str) -> tuple[float, int]:
    """(median rows/s of REF_REPEATS runs, each into fresh time ranges; rows written)."""
    fn = copy_write_row if how == "write_row" else copy_numpy
    rates, total = [], 0
    for _ in range(REF_REPEATS):
        rows = reference_rows(sensors, clock.take(), vectors)
        started = time.perf_counter()
        done = fn(conn, rows)
        rates.append(done / (time.perf_counter() - started))
        total += done
    return statistics.median(rates), total


@dataclass
class Cell:
    fmt: str
    batch: int
    sensors: int
    windows: int  # acknowledged
    windows_per_s: float
    requests_per_s: float
    errors: int
    p50_ms: float
    p95_ms: float
    api_cpu_us: float  # per window
    db_cpu_us: float
    gen_cpu_us: float


def measure_api(st: stack.Stack, conn: psycopg.Connection, sensors: list[tuple[str, str]],
                fmt: str, batch: int, first_us: int, vectors: np.ndarray,
                duration_s: float, apis: list[tuple[stack.Child, str]] | None = None,
                runner: Callable[[loadgen.Job], loadgen.Result] = rawload.run_job) -> Cell:
    """GENERATORS processes x CONCURRENCY requests in flight for `duration_s`, generator i
    sending to API process i mod len(apis) (default: the stack's one API)."""
    apis = apis or [(st.api, st.url)]
    start_at = time.time() + 4.0  # spawned generators import numpy/httpx first
    jobs = [loadgen.Job(apis[i % len(apis)][1], fmt, batch, part, vectors, first_us,
                        duration_s, CONCURRENCY, start_at=start_at)
            for i, part in enumerate(loadgen.split(sensors, GENERATORS))]
    api0, db0 = sum(a.cpu_seconds() for a, _ in apis), stack.backend_cpu_s(conn)
    result = loadgen.run_parallel(jobs, runner=runner)
    api_s = sum(a.cpu_seconds() for a, _ in apis) - api0
    db_s = stack.backend_cpu_s(conn) - db0
    if result.errors:
        raise stack.StackError(f"{fmt} x {batch}: {result.errors} failed requests, e.g. "
                               f"{result.error_samples[:2]}")
    per = 1e6 / max(1, result.windows)
    return Cell(fmt, batch, len(sensors), result.windows, result.windows_per_s,
                result.requests_per_s, result.errors, result.latency_ms(50),
                result.latency_ms(95), api_s * per, db_s * per, result.cpu_s * per)


def _timed_store(conn: psycopg.Connection, sensor: UUID, times: np.ndarray,
                 values: np.ndarray) -> dict[str, float]:
    """`ingest.store.insert_batches` for one batch, statement by statement (its own SQL
    and parameters, not pipelined, so each round trip is seen), with the commit, in ms."""
    steps: dict[str, float] = {}

    def timed(name: str, fn: Any, *args: Any) -> Any:
        started = time.perf_counter()
        out = fn(*args)
        steps[name] = (time.perf_counter() - started) * 1000
        return out

    timed("begin", conn.execute, "BEGIN")
    timed("lock sensor", lambda: conn.execute(store.LOCK_SENSORS, {"ids": [sensor]},
                                              prepare=True).fetchall())
    batch = store.SensorBatch(sensor, times, values)
    timed("insert, queue, touch, notify", lambda: conn.execute(
        store.INSERT_BATCHES, store.round_params([batch]), prepare=True).fetchall())
    timed("commit", conn.execute, "COMMIT")
    return steps


def store_path_ms(conn: psycopg.Connection, sensor: UUID, first_us: int, vectors: np.ndarray,
                  repeats: int = STORE_REPEATS) -> dict[str, float]:
    """In-process medians (ms) of one BATCH-window binary request's server work: parse and
    validate the body, then each statement of the store path and the commit."""
    limits = codec.BatchLimits(max_windows=10_000, max_past_s=366 * 86400.0,
                               max_future_s=300.0)
    runs: list[dict[str, float]] = []
    for j in range(repeats):
        times = first_us + (j * BATCH + np.arange(BATCH, dtype=np.int64)) * US
        body = codec.encode_binary(times, vectors[:BATCH])
        started = time.perf_counter()
        batch = codec.parse_batch(body, codec.BINARY_TYPE, dim=vectors.shape[1],
                                  limits=limits, now_us=int(time.time() * US))
        parse_ms = (time.perf_counter() - started) * 1000
        runs.append({"parse": parse_ms,
                     **_timed_store(conn, sensor, batch.times_us, batch.values)})
    return {name: statistics.median(r[name] for r in runs) for name in runs[0]}


def measure_size(st: stack.Stack, conn: psycopg.Connection, ref_conn: psycopg.Connection,
                 made: list[tuple[str, str, str]], clock: Clock, vectors: np.ndarray,
                 duration_s: float) -> dict[str, Any]:
    sensors = [(sensor, token) for _, sensor, token in made]
    ids = [UUID(sensor) for sensor, _ in sensors]
    refs = {how: measure_reference(ref_conn, ids, clock, vectors, how)
            for how in ("write_row", "numpy")}
    cells = [measure_api(st, conn, sensors, f, BATCH, clock.take(), vectors, duration_s)
             for f in FORMATS]
    return {"sensors": len(sensors), "refs": {how: rate for how, (rate, _) in refs.items()},
            "ref_rows": sum(rows for _, rows in refs.values()),
            "cells": [asdict(c) for c in cells]}


def collect(ctx: Context) -> dict[str, Any]:
    sizes = QUICK_SIZES if ctx.quick else SIZES
    duration_s = 2.0 if ctx.quick else 6.0
    vectors = real_vectors()
    clock = Clock(int((time.time() - 300 * 86400) * US))
    with stack.running_stack("ingest", scheduler=False) as st, \
            st.connect(autocommit=True) as conn, st.connect() as ref_conn:
        made = stack.bulk_sensors(conn, max(sizes) // PER_MACHINE, PER_MACHINE, "ingest")
        per_size = [measure_size(st, conn, ref_conn, made[:n], clock, vectors, duration_s)
                    for n in sizes]
        sweep_sensors = [(s, tok) for _, s, tok in made[:SWEEP_SENSORS]]
        sweep = [asdict(measure_api(st, conn, sweep_sensors, "binary", b, clock.take(),
                                    vectors, duration_s)) for b in SWEEP if b != BATCH]
        levers = ingest_levers.measure(st, lambda **kw: measure_api(
            st, conn, sweep_sensors, "binary", BATCH, clock.take(), vectors, duration_s, **kw))
        phases = store_path_ms(conn, UUID(made[0][1]), clock.take(), vectors)
        mqtt = measure_mqtt(st, conn, [s for s, _ in sweep_sensors], clock, vectors,
                            duration_s)
        stored = conn.execute(COUNT_ROWS).fetchone()
    expected = (sum(c["windows"] for s in per_size for c in s["cells"])
                + sum(s["ref_rows"] for s in per_size) + sum(c["windows"] for c in sweep)
                + STORE_REPEATS * BATCH + sum(c["windows"] for c in mqtt)
                + sum(c["windows"] + c.get("warm_up_windows", 0) for c in levers))
    return {"sizes": per_size, "sweep": sweep, "levers": levers, "phases": phases, "mqtt": mqtt,
            "stored_rows": int(stored[0]) if stored else 0, "expected": expected,
            "duration_s": duration_s}


def measure_mqtt(st: stack.Stack, conn: psycopg.Connection, sensors: list[str], clock: Clock,
                 vectors: np.ndarray, duration_s: float) -> list[dict[str, Any]]:
    """The MQTT path: a broker and `earshot bridge` on the same database and sensors."""
    with ingest_mqtt.broker(st.log_dir / "mosquitto") as port, \
            ingest_mqtt.bridge(st, port) as bridge:
        paho = ingest_mqtt.measure(st, conn, port, bridge, sensors, 1, clock.take(), vectors,
                                   duration_s, lean=False)
        return [paho, *(ingest_mqtt.measure(st, conn, port, bridge, sensors, n, clock.take(),
                                            vectors, duration_s) for n in MQTT_PER_MESSAGE)]


def run(ctx: Context) -> Section:
    raw = collect(ctx)
    per_size, sweep, phases = raw["sizes"], raw["sweep"], raw["phases"]
    text = TEXT.format(
        per_machine=PER_MACHINE, batch=BATCH, gens=GENERATORS, conc=CONCURRENCY,
        duration=raw["duration_s"], ref_rows=REF_ROWS, chunk=REF_CHUNK, repeats=REF_REPEATS,
        target=TARGET_RATIO, stored=raw["stored_rows"], expected=raw["expected"],
        durable="✅ equal" if raw["stored_rows"] == raw["expected"] else "❌ differ",
        store=fmt(sum(phases.values())), store_repeats=STORE_REPEATS,
        pubs=ingest_mqtt.PUBLISHERS, sweep_sensors=SWEEP_SENSORS,
        verdict=verdict(per_size, sweep, phases))
    phase_table = Table(f"Server work of one {BATCH}-window binary request, in-process (ms)",
                        list(phases), [[fmt(v) for v in phases.values()]])
    ref = next(s for s in per_size if s["sensors"] == SWEEP_SENSORS)["refs"]["write_row"]
    tables = [main_table(per_size), growth_table(per_size), sweep_table(sweep, per_size),
              ingest_levers.table(raw["levers"], ref, BATCH, SWEEP_SENSORS),
              mqtt_table(raw["mqtt"], per_size), phase_table]
    return Section("ingest", "Ingest throughput through the API", text, tables, raw)
