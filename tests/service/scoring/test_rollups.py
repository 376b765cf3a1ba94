"""Rollup refresh on the real database: minute and hour rollups equal direct aggregates of
raw scores, dirty marks are consumed, empty minutes disappear, and the advisory lock keeps
a second refresher out."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool

from service.queries import rollups as rollup_queries
from service.scoring import rollups
from service.settings import Settings
from tests.service.scoring.factories import copy_scores, make_machine, series, utc

DIRECT = """
SELECT time_bucket(make_interval(secs => %s), t), count(*)::int, sum(score::float8),
       max(score), (count(*) FILTER (WHERE anomalous))::int
FROM scores WHERE machine_id = %s GROUP BY 1 ORDER BY 1
"""
STORED = """
SELECT bucket, n, score_sum, score_max, n_anomalous FROM score_rollups
WHERE machine_id = %s AND bucket_s = %s ORDER BY bucket
"""


def _assert_rollups_exact(conn: psycopg.Connection, machine_id: UUID) -> None:
    conn.commit()
    for bucket_s in (60, 3600):
        direct = conn.execute(DIRECT, (bucket_s, machine_id)).fetchall()
        stored = conn.execute(STORED, (machine_id, bucket_s)).fetchall()
        assert [r[0] for r in stored] == [r[0] for r in direct]
        for got, want in zip(stored, direct, strict=True):
            assert (got[1], got[3], got[4]) == (want[1], want[3], want[4])
            assert abs(got[2] - want[2]) <= 1e-9 * max(1.0, abs(want[2]))


def _dirty(conn: psycopg.Connection) -> int:
    conn.commit()
    row = conn.execute("SELECT count(*) FROM rollup_dirty").fetchone()
    return int(row[0]) if row else -1


def test_refresh_builds_minute_and_hour_rollups(conn: psycopg.Connection, settings: Settings,
                                                pool: ConnectionPool) -> None:
    machine_id, (a, b) = make_machine(conn, sensors=2)
    rng = np.random.default_rng(1)
    t0 = utc(2026, 11, 1, 22, 40, 3)
    copy_scores(conn, machine_id, a, series(t0, 1, 5000), rng.gamma(2, 0.05, 5000), 0.2)
    copy_scores(conn, machine_id, b, series(t0, 7, 300), rng.gamma(2, 0.05, 300), 0.3, 2)
    minutes = _dirty(conn)
    assert rollups.refresh(settings, pool) == minutes > 0
    assert _dirty(conn) == 0
    _assert_rollups_exact(conn, machine_id)
    assert rollups.refresh(settings, pool) == 0  # nothing dirty: nothing to do

    # Later windows, some inside already rolled-up minutes and hours.
    copy_scores(conn, machine_id, b, series(t0 + timedelta(seconds=3), 600, 8),
                rng.gamma(2, 0.05, 8), 0.3, 2)
    assert rollups.refresh(settings, pool) == 8
    _assert_rollups_exact(conn, machine_id)


def test_minutes_without_scores_lose_their_rollups(conn: psycopg.Connection,
                                                   settings: Settings,
                                                   pool: ConnectionPool) -> None:
    machine_id, (sensor,) = make_machine(conn)
    t0 = utc(2026, 11, 2, 10, 0, 0)
    copy_scores(conn, machine_id, sensor, series(t0, 20, 9), np.linspace(0, 1, 9), 0.5)
    rollups.refresh(settings, pool)
    conn.execute("DELETE FROM scores WHERE t >= %s", (t0 + timedelta(minutes=2),))
    conn.execute("INSERT INTO rollup_dirty VALUES (%s, %s)",
                 (machine_id, t0 + timedelta(minutes=2)))
    conn.commit()
    rollups.refresh(settings, pool)
    _assert_rollups_exact(conn, machine_id)
    hour = conn.execute(STORED, (machine_id, 3600)).fetchall()
    assert [row[1] for row in hour] == [6]


def test_a_second_refresher_is_kept_out_by_the_advisory_lock(
        conn: psycopg.Connection, settings: Settings, pool: ConnectionPool,
        database_url: str) -> None:
    machine_id, (sensor,) = make_machine(conn)
    copy_scores(conn, machine_id, sensor, series(utc(2026, 11, 3), 30, 10), np.ones(10), 0.5)
    with psycopg.connect(database_url) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (rollup_queries.ROLLUP_LOCK_KEY,))
        assert rollups.refresh(settings, pool) == 0
        assert _dirty(conn) == 5
        other.execute("SELECT pg_advisory_unlock(%s)", (rollup_queries.ROLLUP_LOCK_KEY,))
    assert rollups.refresh(settings, pool) == 5
    _assert_rollups_exact(conn, machine_id)
