"""`/v1/machines/{id}/predictions|classes|events`: what the classifier said, per window,
per time bucket, and as sound events (computed on read from the stored probabilities with
the machine's event parameters, see `detectors.events`)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query

from service.api.windows import End, Start, decode_cursor, encode_cursor, time_range
from service.classification.detection import machine_events
from service.classification.rules import rule_from_row
from service.deps import ReadConnDep, ReaderDep, require_machine
from service.queries import event_rules
from service.queries import predictions as prediction_queries
from service.schemas.classification import (
    LABEL_PATTERN,
    ClassBucket,
    Classes,
    EventList,
    EventOut,
    PredictionOut,
    PredictionPage,
)
from service.scoring import timeline

router = APIRouter(prefix="/machines/{machine_id}", tags=["predictions"])
LabelQuery = Annotated[str | None, Query(pattern=LABEL_PATTERN, description="one class")]
# Windows one events request reads (about 2.3 days of 1 s windows of one sensor).
EVENTS_MAX_WINDOWS = 200_000


def _range(conn: ReadConnDep, machine_id: UUID, start: datetime | None,
           end: datetime | None) -> tuple[datetime, datetime]:
    start, end = time_range(start, end)
    require_machine(conn, machine_id)
    return start, end


@router.get("/predictions", response_model=PredictionPage)
def list_predictions(machine_id: UUID, conn: ReadConnDep, _: ReaderDep, start: Start = None,
                     end: End = None, label: LabelQuery = None,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                     cursor: Annotated[str | None, Query(max_length=500)] = None,
                     ) -> PredictionPage:
    """Per-window class probabilities in [start, end), oldest first (keyset pages)."""
    after = decode_cursor(cursor) if cursor else None
    start, end = _range(conn, machine_id, start, end)
    rows = prediction_queries.page(conn, machine_id, start, end, label, after, limit + 1)
    more = len(rows) > limit
    return PredictionPage(items=[PredictionOut(**r) for r in rows[:limit]], limit=limit,
                          next_cursor=encode_cursor(rows[limit - 1]) if more else None)


def _buckets(rows: list[tuple[datetime, str, int]], plan: timeline.Plan) -> list[ClassBucket]:
    counts: dict[datetime, dict[str, int]] = defaultdict(dict)
    for bucket, label, n in rows:
        counts[bucket][label] = n
    out = []
    for i in range(plan.buckets):
        t = plan.lo + timedelta(seconds=i * plan.step_s)
        found = counts.get(t, {})
        n = sum(found.values())
        # Ties go to the alphabetically first class, so the answer is deterministic.
        dominant = min(found, key=lambda k: (-found[k], k)) if found else None
        out.append(ClassBucket(t=t, n=n, dominant=dominant,
                               fractions={k: v / n for k, v in sorted(found.items())}))
    return out


@router.get("/classes", response_model=Classes)
def get_classes(machine_id: UUID, conn: ReadConnDep, _: ReaderDep, start: Start = None,
                end: End = None,
                step: Annotated[str | None, Query(
                    max_length=20, description="bucket width: 30s, 5m, 1h, 1d, 1w or "
                    "seconds; default: a nice step giving at most ~1000 buckets")] = None,
                ) -> Classes:
    """Per bucket: windows predicted, the dominant class and each class's share
    (gap-filled: empty buckets have n = 0)."""
    start, end = _range(conn, machine_id, start, end)
    plan = timeline.plan(start, end, timeline.parse_step(step) if step else None)
    rows = prediction_queries.class_buckets(conn, machine_id, plan.lo, plan.hi, plan.step_s,
                                            timeline.ORIGIN)
    return Classes(machine_id=machine_id, start=plan.lo, end=plan.hi, step=plan.step_s,
                   buckets=_buckets(rows, plan))


@router.get("/events", response_model=EventList)
def list_events(machine_id: UUID, conn: ReadConnDep, _: ReaderDep, start: Start = None,
                end: End = None, label: LabelQuery = None) -> EventList:
    """Sound events in [start, end): per sensor and class, from the window probabilities
    with smoothing, hysteresis, merging and a minimum duration (the machine's event rule
    parameters, listed in `params`). Events cut by the range bounds start or end there."""
    start, end = _range(conn, machine_id, start, end)
    rule = rule_from_row(event_rules.get_rule(conn, machine_id))
    found, truncated = machine_events(conn, machine_id, start, end, rule, EVENTS_MAX_WINDOWS,
                                      label)
    labels = sorted({e.label for e in found} | ({label} if label else set()))
    return EventList(
        machine_id=machine_id, start=start, end=end, truncated=truncated,
        items=[EventOut(label=e.label, start=e.start, end=e.end, confidence=e.confidence,
                        sensor_id=e.sensor_id, open=e.open) for e in found],
        params={name: rule.params_for(name).as_dict() for name in labels})
