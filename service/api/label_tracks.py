"""`/v1/machines/{id}/labels.txt`: labels from and to Audacity label tracks (see
`ingest.label_track` for the format), so annotators keep the tool they know.

Import (POST, `text/plain`): the track's times are seconds from `start`, the wall-clock
time of the recording's first sample as `sensor_id` stored it. A point label marks the
one window around it: [t - window/2, t + window/2) of that sensor. The whole track is
stored or nothing: a bad line is a 422 naming it, a line overlapping another line or a
stored label of a different class is a 422/409 naming both, a line over which the sensor
holds no windows is a 422 naming the line.

Export (GET): the machine's labels, or the sound events detected from its predictions
(`source=events`, one sensor or all), as a track whose 0 s is `start`; Audacity imports
each file as one label track, so labels and events open side by side.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

import psycopg
from fastapi import APIRouter, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from psycopg_pool import ConnectionPool
from pydantic import AwareDatetime

from ingest import label_track
from ingest.errors import UnsupportedMediaTypeError
from service.api.ingest import read_body
from service.api.labels import label_out
from service.api.predictions import EVENTS_MAX_WINDOWS
from service.api.windows import End, time_range
from service.classification.detection import machine_events
from service.classification.rules import rule_from_row
from service.deps import AdminDep, ConnDep, PoolDep, ReaderDep, SettingsDep, require_machine
from service.errors import ConflictError, NotFoundError, UnprocessableError
from service.queries import event_rules, labels, sensors
from service.schemas.classification import LabelTrackImported

router = APIRouter(prefix="/machines/{machine_id}", tags=["labels"])
TRACK_TYPES = ("text/plain",)
EXPORT_MAX_LABELS = 100_000
MAX_EXPORT_SPAN = timedelta(days=31)
_TRACK_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "text/plain": {"schema": {"type": "string"}, "example": "1.500000\t3.250000\tdog_bark\n"
                                                             "7.000000\t7.000000\tclick\n"}}}}
SensorQuery = Annotated[UUID, Query(description="the sensor that recorded the track's audio")]
StartQuery = Annotated[AwareDatetime, Query(description="RFC 3339 time of the track's 0 s")]


def _sensor_window_s(conn: psycopg.Connection, machine_id: UUID, sensor_id: UUID) -> float:
    sensor = sensors.get(conn, sensor_id)
    if sensor is None:
        raise NotFoundError(f"sensor {sensor_id} does not exist")
    if sensor["machine_id"] != machine_id:
        raise UnprocessableError(f"sensor {sensor_id} belongs to machine "
                                 f"{sensor['machine_id']}, not to machine {machine_id}")
    return float(sensor["window_s"])


def _spans(items: list[label_track.TrackLabel], window_s: float) -> list[label_track.Span]:
    half = window_s / 2
    spans = [(i.start_s - half, i.start_s + half, i.label, i.line) if i.is_point
             else (i.start_s, i.end_s, i.label, i.line) for i in items]
    pair = label_track.overlapping_pair(spans)
    if pair is not None:
        (_, _, a, line_a), (_, _, b, line_b) = pair
        raise UnprocessableError(
            f"line {line_b} ({b!r}) overlaps line {line_a} ({a!r}): a window cannot be both; "
            "shorten one of them (a point label covers one window)", line=line_b)
    return spans


def _store_span(conn: psycopg.Connection, machine_id: UUID, sensor_id: UUID,
                start: datetime, span: label_track.Span) -> dict[str, Any]:
    lo, hi, label, line = span
    t0, t1 = start + timedelta(seconds=lo), start + timedelta(seconds=hi)
    found = labels.conflicts(conn, machine_id, t0, t1, label)
    if found:
        raise ConflictError(
            f"line {line} ({label!r}, [{t0.isoformat()}, {t1.isoformat()})) overlaps stored "
            f"label {found[0]['id']} ({found[0]['label']!r}); delete or shorten one of them",
            line=line)
    if not labels.sensor_has_windows(conn, sensor_id, t0, t1):
        raise UnprocessableError(
            f"line {line} ({label!r}): sensor {sensor_id} has no stored windows in "
            f"[{t0.isoformat()}, {t1.isoformat()}); check --start / ?start= (the time of "
            "the recording's first sample) and upload the audio first", line=line)
    return labels.insert_label(conn, machine_id, t0, t1, label)


def _store_track(pool: ConnectionPool, machine_id: UUID, sensor_id: UUID, start: datetime,
                 body: bytes) -> LabelTrackImported:
    try:
        items = label_track.parse(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UnprocessableError(f"the label track is not UTF-8 text ({exc.reason} at byte "
                                 f"{exc.start})") from None
    except label_track.LabelTrackError as exc:
        raise UnprocessableError(f"label track {exc}", line=exc.line) from None
    with pool.connection() as conn, conn.transaction():
        require_machine(conn, machine_id)
        spans = _spans(items, _sensor_window_s(conn, machine_id, sensor_id))
        labels.lock_labels(conn, machine_id)
        rows = [_store_span(conn, machine_id, sensor_id, start, s) for s in spans]
    return LabelTrackImported(machine_id=machine_id, sensor_id=sensor_id, start=start,
                              created=len(rows), items=[label_out(r) for r in rows])


@router.post("/labels.txt", status_code=status.HTTP_201_CREATED,
             response_model=LabelTrackImported, openapi_extra=_TRACK_BODY)
async def import_label_track(machine_id: UUID, request: Request, sensor_id: SensorQuery,
                             start: StartQuery, _: AdminDep, pool: PoolDep,
                             settings: SettingsDep) -> LabelTrackImported:
    """Store every label of an Audacity label track (all or nothing)."""
    media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media not in TRACK_TYPES:
        raise UnsupportedMediaTypeError(f"{media or 'no Content-Type'!r} is not accepted "
                                        "here; send the label track as text/plain")
    body = await read_body(request, settings.max_body_bytes)
    return await run_in_threadpool(_store_track, pool, machine_id, sensor_id, start, body)


def _offsets(rows: list[tuple[datetime, datetime, str]], start: datetime,
             end: datetime) -> list[tuple[float, float, str]]:
    """Seconds from `start`, cut to [start, end]."""
    return [(max((lo - start).total_seconds(), 0.0),
             (min(hi, end) - start).total_seconds(), label) for lo, hi, label in rows]


@router.get("/labels.txt", response_class=PlainTextResponse,
            responses={200: {"content": {"text/plain": {}}}})
def export_label_track(
    machine_id: UUID, conn: ConnDep, _: ReaderDep,
    start: Annotated[AwareDatetime | None, Query(
        description="RFC 3339 time of the track's 0 s; default: end - 24 h")] = None,
    end: End = None,
    source: Annotated[Literal["labels", "events"], Query(
        description="labels: the stored labels; events: sound events detected from the "
                    "classifier's predictions")] = "labels",
    sensor_id: Annotated[UUID | None, Query(description="events of one sensor only")] = None,
) -> PlainTextResponse:
    """An Audacity label track of [start, end); its 0 s is `start`."""
    start, end = time_range(start, end)
    if end - start > MAX_EXPORT_SPAN:
        raise UnprocessableError(f"end must be at most {MAX_EXPORT_SPAN.days} days after "
                                 "start")
    require_machine(conn, machine_id)
    if source == "labels":
        found = labels.list_labels(conn, machine_id, {"start": start, "end": end},
                                   EXPORT_MAX_LABELS, 0)
        rows = [(r["start_at"], r["end_at"], r["label"]) for r in found]
    else:
        rule = rule_from_row(event_rules.get_rule(conn, machine_id))
        events, _capped = machine_events(conn, machine_id, start, end, rule,
                                         EVENTS_MAX_WINDOWS)
        rows = [(e.start, e.end, e.label) for e in events
                if sensor_id is None or e.sensor_id == sensor_id]
    return PlainTextResponse(
        label_track.format_track(_offsets(rows, start, end)),
        headers={"Content-Disposition": f'attachment; filename="{source}.txt"'})
