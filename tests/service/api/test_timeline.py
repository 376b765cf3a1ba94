"""GET /v1/machines/{id}/timeline against a direct `time_bucket` over raw scores, for every
source (raw, minute rollups, hour rollups, and rollups mixed with not-yet-rolled-up
minutes), plus gap filling, the automatic step and a 30-day range served from rollups."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from service.queries import rollups as rollup_queries
from service.scoring import rollups, timeline
from service.settings import Settings
from tests.service.scoring.factories import copy_scores, make_machine, series, utc

PROBLEM = "application/problem+json"
DIRECT = """
SELECT time_bucket(make_interval(secs => %s), t, %s), count(*)::int, avg(score::float8),
       max(score), (count(*) FILTER (WHERE anomalous))::int
FROM scores WHERE machine_id = %s AND t >= %s AND t < %s GROUP BY 1 ORDER BY 1
"""


def _direct(conn: psycopg.Connection, machine_id: UUID, body: dict[str, Any]
            ) -> dict[datetime, tuple[int, float, float, int]]:
    lo, hi = datetime.fromisoformat(body["start"]), datetime.fromisoformat(body["end"])
    rows = conn.execute(DIRECT, (body["step"], timeline.ORIGIN, machine_id, lo, hi)).fetchall()
    return {row[0]: tuple(row[1:]) for row in rows}


def _assert_matches(conn: psycopg.Connection, machine_id: UUID, body: dict[str, Any]) -> int:
    """Every bucket equals the direct computation; empty buckets are present with n=0.
    Returns the number of empty buckets."""
    expected = _direct(conn, machine_id, body)
    lo, hi = datetime.fromisoformat(body["start"]), datetime.fromisoformat(body["end"])
    assert len(body["buckets"]) == (hi - lo).total_seconds() / body["step"]
    empty = 0
    for i, bucket in enumerate(body["buckets"]):
        t = datetime.fromisoformat(bucket["t"])
        assert t == lo + timedelta(seconds=i * body["step"])
        if t not in expected:
            assert (bucket["n"], bucket["mean"], bucket["max"], bucket["anomalous"]) == \
                (0, None, None, 0)
            empty += 1
            continue
        n, mean, mx, anomalous = expected.pop(t)
        assert (bucket["n"], bucket["anomalous"]) == (n, anomalous)
        assert bucket["mean"] == pytest.approx(mean, rel=1e-9)
        assert bucket["max"] == pytest.approx(mx, rel=1e-7)
    assert not expected, "buckets with data missing from the timeline"
    return empty


@pytest.fixture
def pool(admin: TestClient) -> ConnectionPool:
    the_pool: ConnectionPool = admin.app.state.pool  # type: ignore[attr-defined]
    return the_pool


@pytest.fixture
def scored_machine(conn: psycopg.Connection, settings: Settings, pool: ConnectionPool,
                   ) -> UUID:
    """Two sensors over 5 h with a 40-minute silence; the last hour is scored after the
    rollup refresh, so its minutes are still dirty."""
    machine_id, (a, b) = make_machine(conn, sensors=2)
    rng = np.random.default_rng(7)
    t0 = utc(2026, 11, 20, 6, 0, 0) + timedelta(seconds=17)
    first = [t for t in series(t0, 10, 4 * 360) if not utc(2026, 11, 20, 7, 10) <= t
             < utc(2026, 11, 20, 7, 50)]
    copy_scores(conn, machine_id, a, first, rng.gamma(2.0, 0.05, len(first)), 0.2)
    copy_scores(conn, machine_id, b, series(t0, 30, 4 * 120),
                rng.gamma(2.0, 0.05, 4 * 120), 0.25, version=2)
    assert rollups.refresh(settings, pool) > 0
    late = series(utc(2026, 11, 20, 9, 30, 5), 10, 360)
    copy_scores(conn, machine_id, a, late, rng.gamma(2.0, 0.05, len(late)), 0.2)
    # A late window inside an hour that is already rolled up.
    copy_scores(conn, machine_id, b, [utc(2026, 11, 20, 6, 5, 1)], np.array([0.9]), 0.25, 2)
    return machine_id


@pytest.mark.parametrize(("step", "source"), [
    ("30s", "raw"), ("90", "raw"), ("1m", "rollup-1m"), ("5m", "rollup-1m"),
    ("1h", "rollup-1h"), ("2h", "rollup-1h"),
])
def test_timeline_matches_direct_sql(admin: TestClient, conn: psycopg.Connection,
                                     scored_machine: UUID, step: str, source: str) -> None:
    response = admin.get(f"/v1/machines/{scored_machine}/timeline", params={
        "start": "2026-11-20T06:00:00Z", "end": "2026-11-20T13:00:00Z", "step": step})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["source"] == source == response.headers["x-earshot-source"]
    assert body["step"] == timeline.parse_step(step)
    empty = _assert_matches(conn, scored_machine, body)
    assert empty > 0  # the silence and the end of the range are gap-filled
    dirty = conn.execute("SELECT count(*) FROM rollup_dirty WHERE machine_id = %s",
                         (scored_machine,)).fetchone()
    assert dirty is not None and dirty[0] > 0  # rollups and raw were mixed


def test_unaligned_range_covers_whole_buckets(admin: TestClient, conn: psycopg.Connection,
                                              scored_machine: UUID) -> None:
    body = admin.get(f"/v1/machines/{scored_machine}/timeline", params={
        "start": "2026-11-20T06:07:13Z", "end": "2026-11-20T08:59:59.5Z", "step": "1h"}).json()
    assert (body["start"], body["end"]) == ("2026-11-20T06:00:00Z", "2026-11-20T09:00:00Z")
    _assert_matches(conn, scored_machine, body)


@pytest.mark.parametrize("hours", [0.1, 1, 5, 24, 24 * 7, 24 * 45])
def test_default_step_is_nice_and_gives_at_most_1000_buckets(
        admin: TestClient, scored_machine: UUID, hours: float) -> None:
    end = utc(2026, 11, 20, 12)
    body = admin.get(f"/v1/machines/{scored_machine}/timeline", params={
        "start": (end - timedelta(hours=hours)).isoformat(), "end": end.isoformat()}).json()
    assert body["step"] in timeline.NICE_STEPS_S
    assert 1 <= len(body["buckets"]) <= 1001  # an unaligned start adds one bucket at most
    smaller = [s for s in timeline.NICE_STEPS_S if s < body["step"]]
    assert not smaller or hours * 3600 / smaller[-1] > 1000


def test_bad_parameters_are_problems(admin: TestClient, scored_machine: UUID) -> None:
    url = f"/v1/machines/{scored_machine}/timeline"
    cases = [
        ({"start": "2026-11-20T10:00:00Z", "end": "2026-11-20T09:00:00Z"}, 422, "after start"),
        ({"start": "2026-11-01T00:00:00Z", "end": "2026-11-20T00:00:00Z", "step": "1s"},
         422, "buckets"),
        ({"step": "fortnight"}, 422, "not a duration"),
        ({"step": "0s"}, 422, "at least 1 second"),
        ({"start": "2026-11-20T10:00:00"}, 422, "start"),
    ]
    for params, status, words in cases:
        response = admin.get(url, params=params)
        assert response.status_code == status, (params, response.text)
        assert response.headers["content-type"] == PROBLEM
        assert words in response.json()["detail"], response.json()
    missing = admin.get("/v1/machines/00000000-0000-0000-0000-000000000001/timeline")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM


def _scores_rows_scanned(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> int:
    """Rows read from `scores` chunks when running `sql` (EXPLAIN ANALYZE)."""
    chunks = {row[0] for row in conn.execute(
        "SELECT chunk_name FROM timescaledb_information.chunks WHERE hypertable_name = 'scores'")}
    plan = conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params).fetchone()
    assert plan is not None
    total = 0
    stack = [plan[0][0]["Plan"]]
    while stack:
        node = stack.pop()
        if node.get("Relation Name") in chunks:
            total += int(node["Actual Rows"] * node["Actual Loops"])
        stack.extend(node.get("Plans", []))
    return total


def test_thirty_days_are_served_from_hour_rollups(
        admin: TestClient, conn: psycopg.Connection, settings: Settings,
        pool: ConnectionPool) -> None:
    """One window per 10 s for 30 days (259,200 score rows)."""
    machine_id, (sensor,) = make_machine(conn)
    end = datetime.now(UTC).replace(microsecond=0)
    times = series(end - timedelta(days=30), 10, 30 * 8640)
    scores = np.random.default_rng(3).gamma(2.0, 0.05, len(times))
    started = time.perf_counter()
    copy_scores(conn, machine_id, sensor, times, scores, 0.2)
    copy_s = time.perf_counter() - started
    started = time.perf_counter()
    rollups.refresh(settings, pool)
    refresh_s = time.perf_counter() - started
    copy_scores(conn, machine_id, sensor, [end], np.array([0.5]), 0.2)  # fresh, not rolled up
    response = admin.get(f"/v1/machines/{machine_id}/timeline", params={
        "start": (end - timedelta(days=30)).isoformat(),
        "end": (end + timedelta(seconds=1)).isoformat()})
    body = response.json()
    assert response.headers["x-earshot-source"] == body["source"] == "rollup-1h"
    assert body["step"] == 3600 and len(body["buckets"]) <= 1000
    assert sum(b["n"] for b in body["buckets"]) == len(times) + 1
    _assert_matches(conn, machine_id, body)

    params = {"machine_id": machine_id, "lo": datetime.fromisoformat(body["start"]),
              "hi": datetime.fromisoformat(body["end"]), "step_s": 3600,
              "origin": timeline.ORIGIN}
    # Only the one dirty minute is read from raw scores; a raw timeline reads all rows.
    dirty_minute = conn.execute(
        "SELECT count(*) FROM scores WHERE machine_id = %s AND time_bucket('1 minute', t) = "
        "time_bucket('1 minute', %s::timestamptz)", (machine_id, end)).fetchone()
    assert dirty_minute is not None and dirty_minute[0] <= 7
    assert _scores_rows_scanned(conn, rollup_queries.TIMELINE_HOURS, params) == dirty_minute[0]
    assert _scores_rows_scanned(conn, rollup_queries.TIMELINE_RAW, params) == len(times) + 1
    timings = {name: [] for name in ("rollup-1h", "raw")}
    for _ in range(5):
        for name, values in timings.items():
            started = time.perf_counter()
            rollup_queries.timeline(conn, name, machine_id, params["lo"], params["hi"], 3600,
                                    timeline.ORIGIN)
            values.append(time.perf_counter() - started)
    print(f"\n30-day timeline, {len(times)} rows: COPY {copy_s:.2f} s, refresh "
          f"{refresh_s:.2f} s; p50 "
          + ", ".join(f"{k} {statistics.median(v) * 1e3:.1f} ms" for k, v in timings.items()))


def test_alert_spans_in_range_are_listed(admin: TestClient, conn: psycopg.Connection,
                                         scored_machine: UUID) -> None:
    conn.execute(
        "INSERT INTO alerts (machine_id, type, state, starts_at, ends_at, resolved_at) VALUES "
        "(%(m)s, 'anomaly', 'resolved', '2026-11-20T07:00:00Z', '2026-11-20T07:05:00Z', now()),"
        "(%(m)s, 'anomaly', 'resolved', '2026-11-19T07:00:00Z', '2026-11-19T07:05:00Z', now()),"
        "(%(m)s, 'no_data', 'firing', '2026-11-20T09:00:00Z', NULL, NULL)",
        {"m": scored_machine})
    conn.commit()
    body = admin.get(f"/v1/machines/{scored_machine}/timeline", params={
        "start": "2026-11-20T06:00:00Z", "end": "2026-11-20T13:00:00Z"}).json()
    assert [(a["type"], a["state"]) for a in body["alerts"]] == \
        [("anomaly", "resolved"), ("no_data", "firing")]
    assert body["alerts"][1]["ends_at"] is None
