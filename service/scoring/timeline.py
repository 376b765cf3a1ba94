"""Timeline bucketing: step parsing, the automatic "nice" step, bucket alignment, and the
choice of source (hour rollups, minute rollups or raw scores) a step allows."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from service.errors import UnprocessableError
from service.queries import alerts as alert_queries
from service.queries import rollups as rollup_queries
from service.queries import scores as score_queries

# TimescaleDB's default time_bucket origin (a Monday, midnight UTC); explicit so Python
# and SQL align buckets identically and weekly buckets start on Mondays.
ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
NICE_STEPS_S = (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400,
                604800)
TARGET_BUCKETS = 1000
MAX_BUCKETS = 10_000
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_STEP = re.compile(r"^\s*(\d{1,9})\s*([smhdw]?)\s*$")


@dataclass(frozen=True)
class Plan:
    lo: datetime
    hi: datetime
    step_s: int
    source: str

    @property
    def buckets(self) -> int:
        return int((self.hi - self.lo).total_seconds()) // self.step_s


def parse_step(text: str) -> int:
    """Seconds from "30", "30s", "5m", "1h", "1d" or "1w"."""
    match = _STEP.match(text)
    if match is None:
        raise UnprocessableError(
            f"step {text!r} is not a duration: use an integer with an optional unit s, m, "
            "h, d or w (e.g. 30s, 5m, 1h)")
    seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds < 1:
        raise UnprocessableError("step must be at least 1 second")
    return seconds


def auto_step(span_s: float) -> int:
    """The smallest nice step giving at most TARGET_BUCKETS buckets over `span_s`."""
    for step in NICE_STEPS_S:
        if math.ceil(span_s / step) <= TARGET_BUCKETS:
            return step
    weeks = math.ceil(span_s / TARGET_BUCKETS / NICE_STEPS_S[-1])
    return weeks * NICE_STEPS_S[-1]


def source_for(step_s: int) -> str:
    """Hour rollups when whole hours make up a bucket, minute rollups for whole minutes,
    raw scores otherwise (buckets aligned to ORIGIN, itself hour-aligned)."""
    if step_s % 3600 == 0:
        return "rollup-1h"
    if step_s % 60 == 0:
        return "rollup-1m"
    return "raw"


def _floor(t: datetime, step_s: int) -> datetime:
    offset_us = (t - ORIGIN) // timedelta(microseconds=1)
    step_us = step_s * 1_000_000
    return ORIGIN + timedelta(microseconds=(offset_us // step_us) * step_us)


def plan(start: datetime, end: datetime, step_s: int | None) -> Plan:
    """Whole buckets covering [start, end): the first starts at or before `start`, the
    last ends at or after `end`, so every source counts exactly the same windows."""
    if end <= start:
        raise UnprocessableError("end must be after start", start=start.isoformat(),
                                 end=end.isoformat())
    step = step_s if step_s is not None else auto_step((end - start).total_seconds())
    lo = _floor(start, step)
    hi = _floor(end, step)
    if hi < end:
        hi += timedelta(seconds=step)
    result = Plan(lo, hi, step, source_for(step))
    if result.buckets > MAX_BUCKETS:
        raise UnprocessableError(
            f"step {step}s gives {result.buckets} buckets over this range; at most "
            f"{MAX_BUCKETS} are allowed: use a larger step or a shorter range",
            max_buckets=MAX_BUCKETS)
    return result


def answer(conn: psycopg.Connection, machine_id: UUID, start: datetime, end: datetime,
           step_s: int | None) -> dict[str, Any]:
    """The timeline of [start, end) as `GET /v1/machines/{id}/timeline` answers it (the
    dashboard embeds the same answer in the machine page for its first draw)."""
    the_plan = plan(start, end, step_s)
    rows = rollup_queries.timeline(conn, the_plan.source, machine_id, the_plan.lo,
                                   the_plan.hi, the_plan.step_s, ORIGIN)
    model = score_queries.active_detector(conn, machine_id)
    return {"machine_id": machine_id, "start": the_plan.lo, "end": the_plan.hi,
            "step": the_plan.step_s, "source": the_plan.source,
            "threshold": model["threshold"] if model else None,
            "model_version": model["version"] if model else None,
            "buckets": [{"t": t, "n": n, "mean": mean, "max": mx, "anomalous": k}
                        for t, n, mean, mx, k in rows],
            "alerts": alert_queries.spans(conn, machine_id, the_plan.lo, the_plan.hi)}
