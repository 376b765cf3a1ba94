"""`/machines/{id}`: one machine's health, anomaly timeline (drawn in the browser from
`GET /v1/machines/{id}/timeline`, the rollups; its first draw is in the page, read like
that route from the replica when EARSHOT_DATABASE_READ_URL is set), alert spans,
silences, baselines, model versions, classes/events lane, look-and-listen, and (admin)
its alert rule, silences and baselines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import psycopg
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from service.alerting.rules import rule_from_row
from service.deps import ConnDep, ReadConnDep, SettingsDep
from service.errors import NotFoundError
from service.queries import alert_rules, baselines, machines, silences
from service.queries import alerts as alert_queries
from service.queries import models as model_queries
from service.queries import sensors as sensor_queries
from service.schemas.scores import Timeline
from service.scoring import health, timeline
from service.ui.auth import UiReader
from service.ui.render import iso, page

router = APIRouter(include_in_schema=False)
RANGES = (("1h", 3600), ("6h", 21600), ("24h", 86400), ("7d", 604800), ("30d", 2592000),
          ("90d", 7776000))


def _spans(rows: list[dict[str, Any]], note: str) -> list[dict[str, Any]]:
    return [{"id": str(r["id"]), "start": iso(r["start_at"]), "end": iso(r["end_at"]),
             "note": r.get(note) or ""} for r in rows]


def chart_context(conn: ConnDep, machine_id: UUID) -> dict[str, Any]:
    """What the timeline overlays besides the API's buckets and alert spans (JSON in the
    page, read by ui.js)."""
    versions = model_queries.list_models(conn, machine_id, "detector", 100, 0)
    return {
        "machine_id": str(machine_id),
        "silences": _spans(silences.list_silences(conn, machine_id, False, 200, 0), "reason"),
        "baselines": _spans(baselines.list_baselines(conn, machine_id, 200, 0), "note"),
        "models": [{"version": m["version"], "t": iso(m["activated_at"] or m["trained_at"]),
                    "active": m["active"]} for m in versions],
    }


def first_timeline(conn: psycopg.Connection, machine_id: UUID, now: datetime, span_s: int
                   ) -> dict[str, Any]:
    """The API's timeline answer for the page's first draw, in the page: one round trip
    less between navigation and the chart. `conn` is the read connection (the replica),
    as for `GET /v1/machines/{id}/timeline`."""
    found = timeline.answer(conn, machine_id, now - timedelta(seconds=span_s), now, None)
    return Timeline(**found).model_dump(mode="json")


@router.get("/machines/{machine_id}")
def machine_page(request: Request, machine_id: UUID, conn: ConnDep, read_conn: ReadConnDep,
                 settings: SettingsDep, principal: UiReader,
                 span: Annotated[int, Query(ge=60, le=90 * 86400,
                                            description="seconds shown first")] = 86400,
                 ) -> Response:
    machine = machines.get(conn, machine_id)
    if machine is None:
        raise NotFoundError(f"machine {machine_id} does not exist")
    sensors = sensor_queries.list_for_machine(conn, machine_id, 100, 0)
    chart = chart_context(conn, machine_id)
    chart["sensors"] = [{"id": str(s["id"]), "name": s["name"]} for s in sensors]
    now = datetime.now(UTC)
    chart.update(span=span, end=now.timestamp(),
                 timeline=first_timeline(read_conn, machine_id, now, span))
    recent_alerts = alert_queries.list_alerts(
        conn, {"machine_id": machine_id, "state": None, "type": None, "acknowledged": None,
               "start": None, "end": None}, 10, 0)
    return page(request, "machine.html", principal, nav="fleet", machine=machine,
                sensors=sensors, chart=chart, ranges=RANGES, alerts=recent_alerts,
                health=health.machine_health(conn, machine_id, datetime.now(UTC),
                                             settings.health_no_data_s),
                rule=rule_from_row(alert_rules.get_rule(conn, machine_id)),
                silences=silences.list_silences(conn, machine_id, False, 20, 0),
                baselines=baselines.list_baselines(conn, machine_id, 20, 0))
