"""Events of a machine in a time range, computed on read from its stored predictions (per
sensor: one sensor's windows form one probability series)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import numpy as np
import psycopg

from detectors.events import Timing, detect_events
from service.classification.rules import EventRule
from service.queries import predictions as prediction_queries

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class MachineEvent:
    sensor_id: UUID
    label: str
    start: datetime
    end: datetime
    confidence: float
    # Whether the event reaches the newest window of its series (it may still grow).
    open: bool


def _seconds(times: list[datetime]) -> np.ndarray:
    return np.array([(t - EPOCH).total_seconds() for t in times], dtype=np.float64)


def _at(seconds: float) -> datetime:
    return EPOCH + timedelta(microseconds=round(seconds * 1e6))


def timing(conn: psycopg.Connection, machine_id: UUID) -> dict[str, Timing]:
    """The active classifier's per-class onset/offset corrections."""
    return {label: Timing(**found)
            for label, found in prediction_queries.active_timing(conn, machine_id).items()}


def series_events(series: prediction_queries.Series, labels: list[str], rule: EventRule,
                  shifts: dict[str, Timing] | None = None) -> list[MachineEvent]:
    """Events of `labels` in one sensor's probability series."""
    if not series.times or not labels:
        return []
    times = _seconds(series.times)
    probs = np.array([[p.get(label, 0.0) for label in labels] for p in series.probabilities],
                     dtype=np.float64)
    found = detect_events(times, probs, labels, rule.params_by_label(labels),
                          window_s=series.window_s, timing=shifts)
    last = len(series.times) - 1
    return [MachineEvent(series.sensor_id, e.label, _at(e.start), _at(e.end), e.confidence,
                         e.last_window == last) for e in found]


def machine_events(conn: psycopg.Connection, machine_id: UUID, start: datetime,
                   end: datetime, rule: EventRule, cap: int, label: str | None = None,
                   ) -> tuple[list[MachineEvent], bool]:
    """Events of the machine's sensors from predictions in [start, end), sorted by start;
    True when `cap` windows cut the range short (the caller should say so)."""
    found, capped = prediction_queries.series(conn, machine_id, start, end, cap)
    labels = [label] if label is not None else prediction_queries.label_columns(found)
    shifts = timing(conn, machine_id)
    events = [e for s in found for e in series_events(s, labels, rule, shifts)]
    events.sort(key=lambda e: (e.start, e.label, str(e.sensor_id)))
    return events, capped
