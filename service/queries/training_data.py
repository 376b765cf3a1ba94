"""Which windows a machine's detector trains on.

`training_ranges` is the one place that decides the time ranges of normal operation:
today the machine's baselines intersected with [since, now]. Alert feedback plugs in here
(union false-positive alert spans, subtract spans confirmed as faults) so the trainer,
which only reads windows inside the returned ranges, picks it up unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import numpy as np
import psycopg

from ingest.store import decode_vectors
from service.queries import alerts as alert_queries

TimeRange = tuple[datetime, datetime]

SELECT_SENSORS = """
SELECT id, name, embedding_kind, dim FROM sensors WHERE machine_id = %s
ORDER BY created_at, id
"""
SELECT_BASELINE_RANGES = """
SELECT greatest(start_at, coalesce(%(since)s, '-infinity'::timestamptz)) AS lo,
       least(end_at, now()) AS hi
FROM baselines
WHERE machine_id = %(machine_id)s AND start_at < now()
  AND end_at > coalesce(%(since)s, '-infinity'::timestamptz)
ORDER BY lo, hi
"""
# Ranges are disjoint (merged first), so no window is read twice. One index range scan
# per (range, sensor) on the (sensor_id, t) primary key: a join filter over the ranges
# would scan every sensor's windows in the period. Newest first so the cap keeps the most
# recent normal operation.
SELECT_TRAINING_WINDOWS = """
SELECT w.t, w.v
FROM unnest(%(lo)s::timestamptz[], %(hi)s::timestamptz[]) AS r(lo, hi)
CROSS JOIN unnest(%(sensors)s::uuid[]) AS s(id)
CROSS JOIN LATERAL (
    SELECT e.t, e.v FROM embeddings e
    WHERE e.sensor_id = s.id AND e.t >= r.lo AND e.t < r.hi
    ORDER BY e.t DESC
    LIMIT %(cap)s
) AS w
ORDER BY w.t DESC
LIMIT %(cap)s
"""


@dataclass(frozen=True)
class SensorInfo:
    id: UUID
    name: str
    embedding_kind: str
    dim: int


@dataclass(frozen=True)
class TrainingWindows:
    times: list[datetime]
    values: np.ndarray


def machine_sensors(conn: psycopg.Connection, machine_id: UUID) -> list[SensorInfo]:
    """The machine's sensors, oldest first."""
    return [SensorInfo(*row) for row in conn.execute(SELECT_SENSORS, (machine_id,))]


def merge_ranges(ranges: Iterable[TimeRange]) -> list[TimeRange]:
    """Sorted, non-overlapping, non-empty ranges covering the same instants."""
    merged: list[TimeRange] = []
    for lo, hi in sorted(r for r in ranges if r[0] < r[1]):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def subtract_ranges(ranges: list[TimeRange], cuts: Iterable[TimeRange]) -> list[TimeRange]:
    """`ranges` (merged) without the instants of `cuts`, still sorted and disjoint."""
    result = ranges
    for cut_lo, cut_hi in merge_ranges(cuts):
        kept: list[TimeRange] = []
        for lo, hi in result:
            kept.extend(r for r in ((lo, min(hi, cut_lo)), (max(lo, cut_hi), hi)) if r[0] < r[1])
        result = kept
    return result


def training_ranges(conn: psycopg.Connection, machine_id: UUID,
                    since: datetime | None) -> list[TimeRange]:
    """Normal-operation ranges of the machine within [since, now] (since=None: all time),
    merged, as half-open [start, end) ranges: its baselines plus the spans of alerts given
    `false_positive` feedback, minus the spans of alerts `confirmed` as faults."""
    rows = conn.execute(SELECT_BASELINE_RANGES,
                        {"machine_id": machine_id, "since": since}).fetchall()
    normal = [(row[0], row[1]) for row in rows]
    lo_bound, now = since or datetime.min.replace(tzinfo=UTC), datetime.now(UTC)
    normal += [(max(lo, lo_bound), min(hi, now))
               for lo, hi in alert_queries.feedback_ranges(conn, machine_id, "false_positive")]
    faults = alert_queries.feedback_ranges(conn, machine_id, "confirmed")
    return subtract_ranges(merge_ranges(normal), faults)


def training_windows(conn: psycopg.Connection, sensor_ids: list[UUID], dim: int,
                     ranges: list[TimeRange], cap: int) -> TrainingWindows:
    """At most `cap` windows of the sensors inside `ranges` (the newest), in time order."""
    if not ranges or not sensor_ids:
        return TrainingWindows([], np.empty((0, dim), dtype=np.float32))
    merged = merge_ranges(ranges)
    params = {"lo": [r[0] for r in merged], "hi": [r[1] for r in merged],
              "sensors": sensor_ids, "cap": cap}
    rows = conn.execute(SELECT_TRAINING_WINDOWS, params).fetchall()
    rows.reverse()
    return TrainingWindows([row[0] for row in rows], decode_vectors([row[1] for row in rows], dim))


# Classifier training data: windows whose centre lies inside a label range (a window
# starting at t describes t + window_s / 2), one index range scan per (range, sensor).
# Newest first so the cap keeps the most recent labelled data.
SELECT_WINDOW_LENGTHS = "SELECT id, window_s FROM sensors WHERE id = ANY(%s)"
SELECT_LABELLED_WINDOWS = """
SELECT r.ord::int, w.sensor_id, w.t, w.v
FROM unnest(%(lo)s::timestamptz[], %(hi)s::timestamptz[]) WITH ORDINALITY AS r(lo, hi, ord)
CROSS JOIN unnest(%(sensors)s::uuid[], %(half)s::float8[]) AS s(id, half)
CROSS JOIN LATERAL (
    SELECT e.sensor_id, e.t, e.v FROM embeddings e
    WHERE e.sensor_id = s.id AND e.t >= r.lo - make_interval(secs => s.half)
      AND e.t < r.hi - make_interval(secs => s.half)
    ORDER BY e.t DESC
    LIMIT %(cap)s
) AS w
ORDER BY w.t DESC, r.ord
LIMIT %(cap)s
"""


@dataclass(frozen=True)
class LabelledWindows:
    """Windows in time order; `ranges[i]` is the index (into the ranges passed in) of the
    label range row i was found in. A window inside two ranges appears twice."""

    ranges: list[int]
    sensor_ids: list[UUID]
    times: list[datetime]
    values: np.ndarray


def window_lengths(conn: psycopg.Connection, sensor_ids: list[UUID]) -> dict[UUID, float]:
    """Window length in seconds of each sensor."""
    rows = conn.execute(SELECT_WINDOW_LENGTHS, (sensor_ids,)).fetchall()
    return {row[0]: float(row[1]) for row in rows}


def labelled_windows(conn: psycopg.Connection, sensor_ids: list[UUID], dim: int,
                     ranges: list[TimeRange], cap: int) -> LabelledWindows:
    """At most `cap` windows of the sensors whose centres lie in `ranges` (the newest)."""
    if not ranges or not sensor_ids:
        return LabelledWindows([], [], [], np.empty((0, dim), dtype=np.float32))
    lengths = window_lengths(conn, sensor_ids)
    params = {"lo": [r[0] for r in ranges], "hi": [r[1] for r in ranges],
              "sensors": sensor_ids, "half": [lengths.get(s, 1.0) / 2 for s in sensor_ids],
              "cap": cap}
    rows = conn.execute(SELECT_LABELLED_WINDOWS, params).fetchall()
    rows.reverse()
    return LabelledWindows([int(row[0]) - 1 for row in rows], [row[1] for row in rows],
                           [row[2] for row in rows], decode_vectors([row[3] for row in rows], dim))
