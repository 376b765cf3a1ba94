"""Score rollups (minute and hour buckets, maintained by the scheduler because Apache-only
TimescaleDB has no continuous aggregates) and the gap-filled timeline queries over them.

Invariant: every minute that has score rows either has an up-to-date minute rollup or a
`rollup_dirty` row (the scorer writes dirty rows in the transaction that inserts scores),
and an hour rollup is up to date when no minute of that hour is dirty. The timeline
queries rely on it: clean hours come from hour rollups, clean minutes of dirty hours from
minute rollups, dirty minutes from raw scores, all in one statement (one snapshot).

Rollups aggregate every score row in the bucket, whatever its model version: a window is
scored once per version and a new version only scores windows ingested after it became
active, so that is one row per window, except where a first-activation backfill re-scored
windows a previous version had scored (then both rows count, as they do in the raw
timeline).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

# Advisory lock keys (any fixed bigint; named so they are not reused by accident).
ROLLUP_LOCK_KEY = 0x6561_7273_686F_7401  # "earshot" + 1
TRY_XACT_LOCK = "SELECT pg_try_advisory_xact_lock(%s)"
# The LATERAL scans below are cheap, but their row estimates are not, and PostgreSQL's JIT
# then spent ~2 s compiling a 5 ms timeline query (measured). Transaction-scoped.
NO_JIT = "SET LOCAL jit = off"

CLAIM_DIRTY = """
DELETE FROM rollup_dirty d
USING (SELECT machine_id, bucket FROM rollup_dirty ORDER BY machine_id, bucket LIMIT %s) c
WHERE d.machine_id = c.machine_id AND d.bucket = c.bucket
RETURNING d.machine_id, d.bucket
"""
_UPSERT = """
INSERT INTO score_rollups (machine_id, bucket_s, bucket, n, score_sum, score_max, n_anomalous)
SELECT machine_id, {bucket_s}, bucket, n, score_sum, score_max, n_anomalous FROM agg WHERE n > 0
ON CONFLICT (machine_id, bucket_s, bucket) DO UPDATE SET
    n = EXCLUDED.n, score_sum = EXCLUDED.score_sum, score_max = EXCLUDED.score_max,
    n_anomalous = EXCLUDED.n_anomalous
"""
_DELETE_EMPTY = """
gone AS (
    DELETE FROM score_rollups r USING agg a
    WHERE a.n = 0 AND r.machine_id = a.machine_id AND r.bucket_s = {bucket_s}
      AND r.bucket = a.bucket
)
"""
# Dirty minutes are grouped into runs of consecutive minutes ("gaps and islands"), and
# each run is one index range scan grouped by minute: a backfill dirties long runs, and a
# join of every dirty minute against scores made the planner merge-join whole tables.
_RUNS = """
runs AS (
    SELECT machine_id, min(bucket) AS lo, max(bucket) + interval '1 minute' AS hi
    FROM (
        SELECT machine_id, bucket, bucket - interval '1 minute'
               * row_number() OVER (PARTITION BY machine_id ORDER BY bucket) AS island
        FROM {source}
    ) i
    GROUP BY machine_id, island
), raw AS (
    SELECT r.machine_id, a.bucket, a.n, a.score_sum, a.score_max, a.n_anomalous FROM runs r
    CROSS JOIN LATERAL (
        SELECT time_bucket('1 minute', s.t) AS bucket, count(*)::int AS n,
               sum(s.score::float8) AS score_sum, max(s.score) AS score_max,
               (count(*) FILTER (WHERE s.anomalous))::int AS n_anomalous
        FROM scores s
        WHERE s.machine_id = r.machine_id AND s.t >= r.lo AND s.t < r.hi
        GROUP BY 1
    ) a
)"""
REFRESH_MINUTES = """
WITH claimed AS (
    SELECT machine_id, bucket FROM unnest(%s::uuid[], %s::timestamptz[]) AS c(machine_id, bucket)
), """ + _RUNS.format(source="claimed") + """, agg AS (
    SELECT c.machine_id, c.bucket, coalesce(r.n, 0) AS n, coalesce(r.score_sum, 0) AS score_sum,
           r.score_max, coalesce(r.n_anomalous, 0) AS n_anomalous
    FROM claimed c LEFT JOIN raw r ON r.machine_id = c.machine_id AND r.bucket = c.bucket
), """ + _DELETE_EMPTY.format(bucket_s=60) + _UPSERT.format(bucket_s=60)
REFRESH_HOURS = """
WITH hours AS (
    SELECT DISTINCT machine_id, time_bucket('1 hour', bucket) AS bucket
    FROM unnest(%s::uuid[], %s::timestamptz[]) AS c(machine_id, bucket)
), agg AS (
    SELECT h.machine_id, h.bucket, a.n, a.score_sum, a.score_max, a.n_anomalous FROM hours h
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(r.n), 0)::int AS n, coalesce(sum(r.score_sum), 0) AS score_sum,
               max(r.score_max) AS score_max, coalesce(sum(r.n_anomalous), 0)::int AS n_anomalous
        FROM score_rollups r
        WHERE r.machine_id = h.machine_id AND r.bucket_s = 60
          AND r.bucket >= h.bucket AND r.bucket < h.bucket + interval '1 hour'
    ) a
), """ + _DELETE_EMPTY.format(bucket_s=3600) + _UPSERT.format(bucket_s=3600)

# Timelines. Parameters: machine_id, lo, hi (bucket-aligned range), step_s, origin.
_DIRTY = """
dirty AS (
    SELECT machine_id, bucket FROM rollup_dirty
    WHERE machine_id = %(machine_id)s AND bucket >= %(lo)s AND bucket < %(hi)s
), """ + _RUNS.format(source="dirty")
_CLEAN_MINUTES = """
    SELECT r.bucket, r.n, r.score_sum, r.score_max, r.n_anomalous FROM score_rollups r
    WHERE r.machine_id = %(machine_id)s AND r.bucket_s = 60
      AND r.bucket >= %(lo)s AND r.bucket < %(hi)s
      AND NOT EXISTS (SELECT 1 FROM dirty d WHERE d.bucket = r.bucket)"""
_RAW_DIRTY = """
    UNION ALL
    SELECT bucket, n, score_sum, score_max, n_anomalous FROM raw
)"""
_PARTS_TO_BUCKETS = """
, agg AS (
    SELECT time_bucket(make_interval(secs => %(step_s)s), p.bucket, %(origin)s) AS b,
           sum(p.n) AS n, sum(p.score_sum) AS score_sum, max(p.score_max) AS score_max,
           sum(p.n_anomalous) AS n_anomalous
    FROM parts p GROUP BY 1
)"""
_GAP_FILLED = """
SELECT g.b, coalesce(a.n, 0)::int, a.score_sum / nullif(a.n, 0), a.score_max,
       coalesce(a.n_anomalous, 0)::int
FROM generate_series(%(lo)s::timestamptz, %(hi)s::timestamptz - make_interval(secs => %(step_s)s),
                     make_interval(secs => %(step_s)s)) AS g(b)
LEFT JOIN agg a ON a.b = g.b
ORDER BY g.b
"""
TIMELINE_RAW = """
WITH agg AS (
    SELECT time_bucket(make_interval(secs => %(step_s)s), t, %(origin)s) AS b, count(*) AS n,
           sum(score::float8) AS score_sum, max(score) AS score_max,
           count(*) FILTER (WHERE anomalous) AS n_anomalous
    FROM scores
    WHERE machine_id = %(machine_id)s AND t >= %(lo)s AND t < %(hi)s
    GROUP BY 1
)""" + _GAP_FILLED
TIMELINE_MINUTES = ("WITH " + _DIRTY + ", parts AS (" + _CLEAN_MINUTES + _RAW_DIRTY
                    + _PARTS_TO_BUCKETS + _GAP_FILLED)
# Minutes of dirty hours: one PK range scan per dirty hour (LATERAL), not a scan of every
# minute rollup in a 30-day range. An hour has 60 minutes, so LIMIT 60 changes no result;
# it stops the planner from flattening the LATERAL into that full scan (it did).
TIMELINE_HOURS = "WITH " + _DIRTY + """, dirty_hours AS (
    SELECT DISTINCT time_bucket('1 hour', bucket) AS bucket FROM dirty
), parts AS (
    SELECT r.bucket, r.n, r.score_sum, r.score_max, r.n_anomalous FROM score_rollups r
    WHERE r.machine_id = %(machine_id)s AND r.bucket_s = 3600
      AND r.bucket >= %(lo)s AND r.bucket < %(hi)s
      AND NOT EXISTS (SELECT 1 FROM dirty_hours dh WHERE dh.bucket = r.bucket)
    UNION ALL
    SELECT m.bucket, m.n, m.score_sum, m.score_max, m.n_anomalous FROM dirty_hours dh
    CROSS JOIN LATERAL (
        SELECT r.bucket, r.n, r.score_sum, r.score_max, r.n_anomalous FROM score_rollups r
        WHERE r.machine_id = %(machine_id)s AND r.bucket_s = 60
          AND r.bucket >= dh.bucket AND r.bucket < dh.bucket + interval '1 hour'
        LIMIT 60
    ) m
    WHERE NOT EXISTS (SELECT 1 FROM dirty d WHERE d.bucket = m.bucket)""" + _RAW_DIRTY \
    + _PARTS_TO_BUCKETS + _GAP_FILLED
TIMELINE_SQL = {"raw": TIMELINE_RAW, "rollup-1m": TIMELINE_MINUTES, "rollup-1h": TIMELINE_HOURS}


def try_lock(conn: psycopg.Connection, key: int) -> bool:
    """Take a transaction-scoped advisory lock if no other session holds it."""
    row = conn.execute(TRY_XACT_LOCK, (key,)).fetchone()
    return bool(row and row[0])


def claim_dirty(conn: psycopg.Connection, limit: int) -> list[tuple[UUID, datetime]]:
    """Remove up to `limit` dirty minute rows and return them. A scorer that dirties one of
    them again meanwhile waits for this transaction and re-inserts it afterwards."""
    rows = conn.execute(CLAIM_DIRTY, (limit,)).fetchall()
    return [(row[0], row[1]) for row in rows]


def refresh_minutes(conn: psycopg.Connection, dirty: Sequence[tuple[UUID, datetime]]) -> None:
    conn.execute(NO_JIT)
    conn.execute(REFRESH_MINUTES, ([d[0] for d in dirty], [d[1] for d in dirty]))


def refresh_hours(conn: psycopg.Connection, dirty: Sequence[tuple[UUID, datetime]]) -> None:
    """Recompute the hour rollups of the hours containing `dirty` minutes, from minute
    rollups (run after :func:`refresh_minutes` in the same transaction)."""
    conn.execute(REFRESH_HOURS, ([d[0] for d in dirty], [d[1] for d in dirty]))


def timeline(conn: psycopg.Connection, source: str, machine_id: UUID, lo: datetime,
             hi: datetime, step_s: int, origin: datetime) -> list[tuple[Any, ...]]:
    """Gap-filled buckets [lo, hi) of `step_s` seconds aligned to `origin`: rows of
    (bucket start, n, mean, max, n_anomalous); mean and max are None for empty buckets."""
    params = {"machine_id": machine_id, "lo": lo, "hi": hi, "step_s": step_s,
              "origin": origin}
    conn.execute(NO_JIT)
    return conn.execute(TIMELINE_SQL[source], params).fetchall()
