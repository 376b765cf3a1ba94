"""`event.detected` webhooks, queued by the scorer in the transaction that stored the
predictions (so an announcement exists exactly when its predictions committed).

When: as soon as an event of a class the machine's rule names is detected, i.e. once it
has lasted `min_duration_s` (an alarm about a squeal is useful while it squeals, not after
it stopped). The payload carries the event so far: `end` is its newest window and `open`
says whether it may still grow.

Once: every announced event is recorded in `detected_events`; a later batch that detects
an event overlapping a recorded one of the same sensor and class (the same event grown,
or merged with a neighbour) announces nothing. Detection re-runs on the stored
probabilities of the new windows plus a lookback long enough for smoothing, minimum
duration and merging, so it sees the same series the events endpoint does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from service.alerting.events import EVENT_DETECTED
from service.alerting.outbox import enqueue_event
from service.classification.detection import MachineEvent, series_events, timing
from service.classification.rules import EventRule, rule_from_row
from service.queries import event_rules
from service.queries import predictions as prediction_queries
from service.settings import get_settings

BASE_LOOKBACK_S = 60.0
LOOKBACK_CAP = 100_000
_ONE_US = timedelta(microseconds=1)


def lookback(rule: EventRule) -> timedelta:
    """How far before new windows detection must look to see their events whole."""
    extra = max((p.smoothing + p.min_duration_s + p.merge_gap_s
                 for p in (rule.params_for(label) for label in rule.notify_labels)),
                default=0.0)
    return timedelta(seconds=BASE_LOOKBACK_S + extra)


def _iso_q(value: datetime) -> str:
    return value.isoformat().replace("+", "%2B")


def payload(machine_id: UUID, version: int, event: MachineEvent) -> dict[str, Any]:
    base = get_settings().public_url
    path = (f"/v1/machines/{machine_id}/events?start={_iso_q(event.start)}"
            f"&end={_iso_q(event.end + timedelta(seconds=1))}&label={event.label}")
    return {"machine_id": machine_id, "sensor_id": event.sensor_id, "label": event.label,
            "start": event.start, "end": event.end, "confidence": event.confidence,
            "open": event.open, "model_version": version,
            "links": {"events": (base.rstrip("/") + path) if base else path}}


def _announce(conn: psycopg.Connection, machine_id: UUID, version: int,
              event: MachineEvent) -> None:
    data = payload(machine_id, version, event)
    message_id = enqueue_event(conn, EVENT_DETECTED, data, machine_id)
    event_rules.insert_detected(conn, {
        "machine_id": machine_id, "sensor_id": event.sensor_id, "label": event.label,
        "start": event.start, "end": event.end, "confidence": event.confidence,
        "version": version, "message_id": message_id})


def on_predicted(conn: psycopg.Connection, machine_id: UUID, version: int,
                 inserted: list[tuple[UUID, datetime]]) -> int:
    """Announce new events touching the freshly predicted windows; returns how many."""
    if not inserted:
        return 0
    rule = rule_from_row(event_rules.get_rule(conn, machine_id))
    if not rule.notify_labels:
        return 0
    event_rules.lock_events(conn, machine_id)
    spans: dict[UUID, tuple[datetime, datetime]] = {}
    for sensor_id, t in inserted:
        lo, hi = spans.get(sensor_id, (t, t))
        spans[sensor_id] = (min(lo, t), max(hi, t))
    count, shifts = 0, timing(conn, machine_id)
    for sensor_id, (lo, hi) in spans.items():
        found, _ = prediction_queries.series(conn, machine_id, lo - lookback(rule),
                                             hi + _ONE_US, LOOKBACK_CAP, sensor_id)
        for series in found:
            for event in series_events(series, list(rule.notify_labels), rule, shifts):
                if event.end <= lo or event_rules.announced(
                        conn, machine_id, sensor_id, event.label, event.start, event.end):
                    continue
                _announce(conn, machine_id, version, event)
                count += 1
    return count
