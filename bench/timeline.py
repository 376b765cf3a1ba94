"""Timeline queries through the running API over 1, 7 and 30 days of 1 Hz scores, against
the same answer from a direct `time_bucket` query over raw scores."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import numpy as np
import psycopg

from bench import stack
from bench.common import Context, Section, Table, check, fmt, repeat
from service.db import make_pool
from service.queries import rollups as rollup_queries
from service.scoring import copy, rollups, timeline

SPANS_D = (1, 7, 30)
QUICK_SPANS_D = (1, 7)
OTHER_MACHINES = 4
OTHER_DAYS = 7
TARGET_P50_MS = 50.0
THRESHOLD = 1.0
API_RUNS, RAW_RUNS = 40, 8
COPY_SCORES = ("COPY scores (machine_id, sensor_id, t, model_version, score, threshold, "
               "anomalous) FROM STDIN WITH (FORMAT binary)")
MARK_DIRTY = """
INSERT INTO rollup_dirty (machine_id, bucket)
SELECT %s, generate_series(%s::timestamptz, %s::timestamptz - interval '1 minute',
                           interval '1 minute')
ON CONFLICT DO NOTHING
"""
LIVE_DIRTY_MIN = 10  # a live machine: the newest minutes are still dirty


def day_scores(rng: np.random.Generator, n: int) -> np.ndarray:
    """A day of detector-like scores: noise around a slow drift, with a few anomalous
    episodes of a few minutes above the threshold."""
    drift = np.cumsum(rng.normal(0, 0.002, n)).clip(-0.3, 0.3)
    scores = 0.5 + drift + rng.normal(0, 0.08, n)
    for start in rng.integers(0, n - 600, size=3):
        scores[start:start + rng.integers(60, 600)] += 0.8
    return scores.astype(np.float32)


def load_machine(conn: psycopg.Connection, machine: UUID, sensor: UUID, end: datetime,
                 days: int, seed: int) -> int:
    """`days` days of 1 Hz scores up to `end`, through the scorer's own COPY encoder,
    one day per COPY; every minute marked dirty as the scorer marks it."""
    rng = np.random.default_rng(seed)
    start = end - timedelta(days=days)
    for day in range(days):
        first = start + timedelta(days=day)
        times = [first + timedelta(seconds=i) for i in range(86_400)]
        scores = day_scores(rng, len(times))
        block = copy.score_rows(machine, [sensor] * len(times), times, 1, scores, THRESHOLD,
                                scores > THRESHOLD)
        with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_SCORES) as stream:
            stream.write(copy.payload([block]))
    with conn.transaction():
        conn.execute(MARK_DIRTY, (machine, start, end))
    return days * 86_400


def build_rollups(st: stack.Stack) -> tuple[int, float]:
    """The service's own rollup job (`service.scoring.rollups.refresh`) until nothing is
    dirty: (minutes processed, seconds)."""
    pool = make_pool(st.settings, max_size=2)
    pool.open(wait=True)
    total, started = 0, time.perf_counter()
    try:
        for _ in range(100):
            done = rollups.refresh(st.settings, pool)
            total += done
            if done == 0:
                break
    finally:
        pool.close()
    return total, time.perf_counter() - started


def raw_answer(conn: psycopg.Connection, machine: UUID, start: datetime, end: datetime
               ) -> list[tuple[Any, ...]]:
    """The reference: the same buckets straight from raw scores with time_bucket."""
    plan = timeline.plan(start, end, None)
    return rollup_queries.timeline(conn, "raw", machine, plan.lo, plan.hi, plan.step_s,
                                   timeline.ORIGIN)


def api_answer(client: httpx.Client, machine: UUID, start: datetime, end: datetime
               ) -> dict[str, Any]:
    found = stack.raise_for(client.get(f"/v1/machines/{machine}/timeline", params={
        "start": stack.rfc3339(start), "end": stack.rfc3339(end)}))
    return found


def same_answer(api: dict[str, Any], raw: list[tuple[Any, ...]]) -> bool:
    """Bucket by bucket: count, anomalous count, max and mean (float32 scores summed in
    float64: equal to 1e-6)."""
    if len(api["buckets"]) != len(raw):
        return False
    for bucket, (t, n, mean, mx, k) in zip(api["buckets"], raw, strict=True):
        if datetime.fromisoformat(bucket["t"]) != t or bucket["n"] != n or \
                bucket["anomalous"] != k:
            return False
        if n and (abs(bucket["mean"] - mean) > 1e-6 or abs(bucket["max"] - mx) > 1e-6):
            return False
    return True


def measure_span(client: httpx.Client, conn: psycopg.Connection, machine: UUID,
                 end: datetime, days: int) -> dict[str, Any]:
    start = end - timedelta(days=days)
    plan = timeline.plan(start, end, None)
    api = api_answer(client, machine, start, end)
    equal = same_answer(api, raw_answer(conn, machine, start, end))
    api_t = repeat(lambda: api_answer(client, machine, start, end), min_runs=API_RUNS,
                   max_runs=API_RUNS, budget_s=0)
    raw_t = repeat(lambda: raw_answer(conn, machine, start, end), min_runs=3,
                   max_runs=RAW_RUNS, budget_s=10.0)
    windows = sum(b["n"] for b in api["buckets"])
    return {"days": days, "step_s": plan.step_s, "source": api["source"],
            "buckets": len(api["buckets"]), "windows": windows, "same_answer": equal,
            "api": api_t.to_dict(), "raw": raw_t.to_dict()}


def collect(ctx: Context) -> dict[str, Any]:
    spans = QUICK_SPANS_D if ctx.quick else SPANS_D
    others = 1 if ctx.quick else OTHER_MACHINES
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with stack.running_stack("timeline", scheduler=False) as st, st.connect() as conn:
        made = stack.bulk_sensors(conn, 1 + others, 1, "timeline")
        target = (UUID(made[0][0]), UUID(made[0][1]))
        started = time.perf_counter()
        rows = load_machine(conn, *target, end, max(spans), seed=0)
        for k, (m, s, _) in enumerate(made[1:], start=1):
            rows += load_machine(conn, UUID(m), UUID(s), end, OTHER_DAYS, seed=k)
        load_s = time.perf_counter() - started
        minutes, rollup_s = build_rollups(st)
        with st.client() as client:
            per_span = [measure_span(client, conn, target[0], end, d) for d in spans]
            with conn.transaction():  # live: the newest minutes are dirty
                conn.execute(MARK_DIRTY, (target[0], end - timedelta(minutes=LIVE_DIRTY_MIN),
                                          end))
            live = measure_span(client, conn, target[0], end, max(spans))
    return {"spans": per_span, "live": live, "rows": rows, "load_s": load_s,
            "rollup_minutes": minutes, "rollup_s": rollup_s, "others": others}


def _ms(timing: dict[str, Any], key: str) -> float:
    return float(timing[key]) * 1000


def span_table(spans: list[dict[str, Any]], live: dict[str, Any]) -> Table:
    rows = []
    for s in [*spans, {**live, "label": f"{live['days']} (last {LIVE_DIRTY_MIN} min dirty)"}]:
        api50, raw50 = _ms(s["api"], "p50_s"), _ms(s["raw"], "p50_s")
        target = s["days"] == 30
        rows.append([str(s.get("label", s["days"])), f"{s['windows']:,}",
                     f"{s['step_s']} s, {s['buckets']}", s["source"],
                     fmt(api50), fmt(_ms(s["api"], "p95_s")), fmt(raw50),
                     fmt(_ms(s["raw"], "p95_s")), f"{api50 / raw50:.3f}x",
                     "✅" if s["same_answer"] else "❌",
                     check(api50 <= TARGET_P50_MS) if target else "—"])
    return Table("GET /v1/machines/{id}/timeline (default step) against a direct time_bucket "
                 "query over raw scores, same run",
                 ["days", "windows covered", "step, buckets", "source", "API p50 ms",
                  "API p95 ms", "raw time_bucket p50 ms", "raw p95 ms", "API / raw",
                  "same answer", f"30 d p50 ≤ {TARGET_P50_MS:g} ms"], rows)


def growth_table(spans: list[dict[str, Any]]) -> Table:
    first = spans[0]
    rows = [[str(s["days"]), f"{s['windows'] / first['windows']:.0f}x",
             f"{_ms(s['api'], 'p50_s') / _ms(first['api'], 'p50_s'):.2f}x",
             f"{_ms(s['raw'], 'p50_s') / _ms(first['raw'], 'p50_s'):.2f}x"] for s in spans]
    return Table(f"Growth: p50 cost relative to {first['days']} day",
                 ["days", "windows", "API (rollups)", "raw time_bucket"], rows)


TEXT = """
**Data.** A fresh database; the target machine has {days} days of 1 Hz scores
({target_rows:,} windows), and {others} other machines {other_days} days each, {rows:,}
score rows in all, generated (noise around a slow drift with a few anomalous episodes a
day) and bulk-loaded through the scorer's own COPY encoder (`service.scoring.copy`) with
every minute marked dirty as the scorer marks it ({load:.0f} s). The rollups are then built
by the service's own job, `service.scoring.rollups.refresh` (what the scheduler runs every
10 s): {minutes:,} dirty minutes in {rollup:.0f} s.

**Method.** `GET /v1/machines/{{id}}/timeline?start&end` with the default step (~1,000
buckets at most), timed at the client over HTTP on 127.0.0.1 against the API (one uvicorn
process), {api_runs} requests per span; **reference, same run**: the same buckets from a
direct `time_bucket` query over the raw `scores` rows (the service's own raw-source SQL,
`service.queries.rollups.TIMELINE_RAW`, through psycopg, no HTTP), {raw_runs} runs at most.
*Same answer* compares every bucket (count, anomalous count, mean and max). The last row
repeats the longest span with the newest {live} minutes marked dirty, as on a live machine,
so the query mixes hour rollups, minute rollups and raw scores.
Target: 30 days ≤ {target:g} ms p50. {verdict}
"""


def verdict(spans: list[dict[str, Any]]) -> str:
    longest = max(spans, key=lambda s: s["days"])
    p50 = _ms(longest["api"], "p50_s")
    if longest["days"] < 30:
        return "(Not measured: a quick run stops before 30 days.)"
    if p50 <= TARGET_P50_MS:
        return f"**Target met**: {fmt(p50)} ms p50 over 30 days."
    return (f"**Target missed**: {fmt(p50)} ms p50 over 30 days (gap "
            f"{fmt(p50 - TARGET_P50_MS)} ms); see the per-source rows for where it goes.")


def run(ctx: Context) -> Section:
    raw = collect(ctx)
    spans = raw["spans"]
    text = TEXT.format(days=max(s["days"] for s in spans),
                       target_rows=max(s["windows"] for s in spans), others=raw["others"],
                       other_days=OTHER_DAYS, rows=raw["rows"], load=raw["load_s"],
                       minutes=raw["rollup_minutes"], rollup=raw["rollup_s"],
                       api_runs=API_RUNS, raw_runs=RAW_RUNS, live=LIVE_DIRTY_MIN,
                       target=TARGET_P50_MS, verdict=verdict(spans))
    return Section("timeline", "Timeline queries over rollups", text,
                   [span_table(spans, raw["live"]), growth_table(spans)], raw)
