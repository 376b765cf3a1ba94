"""The fleet overview in one statement: every machine (filtered by kind and labels) with
what its health level needs (service.scoring.health.level) and its last data, so 1,000
machines cost one round trip, not thousands."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from service.scoring.health import RECENT_S

# Each LATERAL is an index range scan (scores_machine_t_idx) bounded by `now() - horizon`,
# which TimescaleDB turns into a constant when planning, so only the newest chunks are
# probed (unbounded, every chunk's index would be probed once per machine).
FLEET = """
SELECT m.id, m.name, m.kind, m.location, m.labels,
       d.version AS model_version, d.algorithm, d.threshold,
       l.t AS latest_t, l.score AS latest_score, l.threshold AS latest_threshold,
       coalesce(r.windows, 0) AS recent_windows, coalesce(r.anomalous, 0) AS recent_anomalous,
       coalesce(a.firing, 0) AS firing, coalesce(a.firing_anomaly, 0) AS firing_anomaly,
       coalesce(a.unacknowledged, 0) AS unacknowledged, seen.last_seen_at
FROM machines m
LEFT JOIN models d ON d.machine_id = m.id AND d.target = 'detector' AND d.active
LEFT JOIN LATERAL (
    SELECT s.t, s.score, s.threshold FROM scores s
    WHERE s.machine_id = m.id AND s.t > now() - make_interval(secs => %(horizon_s)s)
    ORDER BY s.t DESC LIMIT 1
) l ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS windows, count(*) FILTER (WHERE s.anomalous) AS anomalous
    FROM scores s
    WHERE s.machine_id = m.id AND s.t > now() - make_interval(secs => %(horizon_s)s)
      AND s.t > l.t - make_interval(secs => %(recent_s)s) AND s.t <= l.t
) r ON l.t IS NOT NULL
LEFT JOIN (
    SELECT machine_id, count(*) AS firing,
           count(*) FILTER (WHERE type = 'anomaly') AS firing_anomaly,
           count(*) FILTER (WHERE acknowledged_at IS NULL) AS unacknowledged
    FROM alerts WHERE state = 'firing' GROUP BY machine_id
) a ON a.machine_id = m.id
LEFT JOIN (
    SELECT machine_id, max(last_seen_at) AS last_seen_at FROM sensors GROUP BY machine_id
) seen ON seen.machine_id = m.id
WHERE (%(kind)s::text IS NULL OR m.kind = %(kind)s)
  AND m.labels @> %(labels)s AND m.labels ?& %(keys)s::text[]
ORDER BY m.name, m.id
LIMIT %(limit)s
"""
KINDS = "SELECT DISTINCT kind FROM machines ORDER BY kind LIMIT 500"


def machines(conn: psycopg.Connection, limit: int, no_data_s: float, *,
             kind: str | None = None, labels: Mapping[str, str] | None = None,
             label_keys: list[str] | None = None) -> list[dict[str, Any]]:
    """Up to `limit` machines by name with model, open alerts, when a sensor last sent
    data, and, when it was scored within `no_data_s`, the newest score and the counts of
    the RECENT_S seconds before it."""
    params = {"kind": kind, "labels": Jsonb(dict(labels or {})), "keys": label_keys or [],
              "limit": limit, "recent_s": RECENT_S, "horizon_s": no_data_s + RECENT_S}
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(FLEET, params).fetchall()


def kinds(conn: psycopg.Connection) -> list[str]:
    """Machine kinds in use, for the overview's filter."""
    return [row[0] for row in conn.execute(KINDS).fetchall()]
