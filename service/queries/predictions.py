"""Classifier predictions (`predictions`): the scorer's writes and the reads behind the
predictions, classes and events endpoints and the operating-state check.

A window predicted by several classifier versions has one row per version; the reads for
classes and events take each window's newest version.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

# Sorted inserts keep concurrent scorers of overlapping ranges from deadlocking.
INSERT_PREDICTIONS = """
INSERT INTO predictions (machine_id, sensor_id, t, model_version, label, confidence,
                         probabilities)
SELECT %(machine_id)s, u.sensor_id, u.t, %(version)s, u.label, u.confidence, u.probabilities
FROM unnest(%(sensors)s::uuid[], %(times)s::timestamptz[], %(labels)s::text[],
            %(confidences)s::real[], %(probabilities)s::jsonb[])
     AS u(sensor_id, t, label, confidence, probabilities)
ORDER BY u.sensor_id, u.t
ON CONFLICT (sensor_id, t, model_version) DO NOTHING
RETURNING sensor_id, t
"""
PAGE = """
SELECT t, sensor_id, model_version, label, confidence, probabilities FROM predictions
WHERE machine_id = %(machine_id)s AND t >= %(start)s AND t < %(end)s
  AND (%(label)s::text IS NULL OR label = %(label)s)
  AND t >= %(after_t)s AND (t, sensor_id, model_version) > (%(after_t)s, %(after_s)s, %(after_v)s)
ORDER BY t, sensor_id, model_version
LIMIT %(limit)s
"""
# Per bucket and class: windows whose newest prediction is that class.
CLASS_BUCKETS = """
SELECT time_bucket(make_interval(secs => %(step)s), p.t, %(origin)s) AS bucket, p.label,
       count(*) AS n
FROM (SELECT DISTINCT ON (sensor_id, t) t, label FROM predictions
      WHERE machine_id = %(machine_id)s AND t >= %(start)s AND t < %(end)s
      ORDER BY sensor_id, t, model_version DESC) AS p
GROUP BY 1, 2 ORDER BY 1, 2
"""
# The probability series event detection runs on: per sensor, in time order, the newest
# version of each window, with its sensor's window length (1 s for a deleted sensor).
SERIES = """
SELECT p.sensor_id, p.t, coalesce(s.window_s, 1.0) AS window_s, p.probabilities
FROM (SELECT DISTINCT ON (sensor_id, t) sensor_id, t, probabilities FROM predictions
      WHERE machine_id = %(machine_id)s AND t >= %(start)s AND t < %(end)s
        AND (%(sensor_id)s::uuid IS NULL OR sensor_id = %(sensor_id)s)
      ORDER BY sensor_id, t, model_version DESC) AS p
LEFT JOIN sensors s ON s.id = p.sensor_id
ORDER BY p.sensor_id, p.t
LIMIT %(cap)s
"""
# Per-class event timing corrections learned at training (service.training.classifier).
ACTIVE_TIMING = """
SELECT metrics -> 'event_timing' FROM models
WHERE machine_id = %s AND target = 'classifier' AND active
"""
LATEST = """
SELECT t, label FROM predictions WHERE machine_id = %s AND t <= %s
ORDER BY t DESC, model_version DESC LIMIT 1
"""


@dataclass(frozen=True)
class PredictionRows:
    """Predictions of one machine and classifier version, ready to insert."""

    machine_id: UUID
    version: int
    sensor_ids: list[UUID]
    times: list[datetime]
    labels: list[str]
    confidences: list[float]
    probabilities: list[dict[str, float]]


@dataclass(frozen=True)
class Series:
    sensor_id: UUID
    window_s: float
    times: list[datetime]
    probabilities: list[dict[str, float]]


def insert(conn: psycopg.Connection, rows: PredictionRows) -> list[tuple[UUID, datetime]]:
    """Store predictions, skipping (window, version) pairs already predicted; returns the
    (sensor_id, t) pairs this call inserted."""
    params = {"machine_id": rows.machine_id, "version": rows.version,
              "sensors": rows.sensor_ids, "times": rows.times, "labels": rows.labels,
              "confidences": rows.confidences,
              "probabilities": [Jsonb(p) for p in rows.probabilities]}
    return [(row[0], row[1]) for row in conn.execute(INSERT_PREDICTIONS, params).fetchall()]


def page(conn: psycopg.Connection, machine_id: UUID, start: datetime, end: datetime,
         label: str | None, after: tuple[datetime, UUID, int] | None,
         limit: int) -> list[dict[str, Any]]:
    after_t, after_s, after_v = after or (start, UUID(int=0), -1)
    params = {"machine_id": machine_id, "start": start, "end": end, "label": label,
              "after_t": after_t, "after_s": after_s, "after_v": after_v, "limit": limit}
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(PAGE, params).fetchall()


def class_buckets(conn: psycopg.Connection, machine_id: UUID, start: datetime, end: datetime,
                  step_s: int, origin: datetime) -> list[tuple[datetime, str, int]]:
    params = {"machine_id": machine_id, "start": start, "end": end, "step": step_s,
              "origin": origin}
    return [(row[0], row[1], int(row[2]))
            for row in conn.execute(CLASS_BUCKETS, params).fetchall()]


def series(conn: psycopg.Connection, machine_id: UUID, start: datetime, end: datetime,
           cap: int, sensor_id: UUID | None = None) -> tuple[list[Series], bool]:
    """Per-sensor probability series in [start, end); True when `cap` rows cut it short."""
    params = {"machine_id": machine_id, "start": start, "end": end, "cap": cap,
              "sensor_id": sensor_id}
    rows = conn.execute(SERIES, params).fetchall()
    found: dict[UUID, Series] = {}
    for sensor, t, window_s, probabilities in rows:
        item = found.get(sensor)
        if item is None:
            item = found[sensor] = Series(sensor, float(window_s), [], [])
        item.times.append(t)
        item.probabilities.append(probabilities)
    return list(found.values()), len(rows) >= cap


def latest_label(conn: psycopg.Connection, machine_id: UUID,
                 at: datetime) -> tuple[datetime, str] | None:
    """The newest predicted window of the machine at or before `at`: (t, label)."""
    row = conn.execute(LATEST, (machine_id, at)).fetchone()
    return (row[0], row[1]) if row else None


def active_timing(conn: psycopg.Connection, machine_id: UUID) -> dict[str, Any]:
    """`metrics.event_timing` of the machine's active classifier ({} if none)."""
    row = conn.execute(ACTIVE_TIMING, (machine_id,)).fetchone()
    return dict(row[0]) if row and row[0] else {}


def label_columns(series_list: Sequence[Series]) -> list[str]:
    """Every class named in the series' probabilities, sorted."""
    return sorted({label for s in series_list for p in s.probabilities for label in p})
