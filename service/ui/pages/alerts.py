"""`/alerts` (the inbox: filter by machine, state and acknowledgement; acknowledge and mark
false positive through the API) and `/alerts/{id}` (its evidence: scores over its span,
spectrogram and audio, and its webhook deliveries)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from service.deps import ConnDep
from service.errors import NotFoundError
from service.queries import alerts as alert_queries
from service.queries import machines
from service.queries import sensors as sensor_queries
from service.queries import webhooks as webhook_queries
from service.ui.auth import UiReader
from service.ui.pages.machine import chart_context
from service.ui.render import iso, page

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 100


def _names(conn: ConnDep) -> dict[Any, str]:
    return {m["id"]: m["name"] for m in machines.list_machines(conn, 5000, 0)}


@router.get("/alerts")
def inbox(request: Request, conn: ConnDep, principal: UiReader,
          machine_id: Annotated[UUID | None, Query()] = None,
          state: Annotated[Literal["firing", "resolved", ""], Query()] = "",
          acknowledged: Annotated[Literal["yes", "no", ""], Query()] = "") -> Response:
    filters = {"machine_id": machine_id, "state": state or None, "type": None,
               "acknowledged": {"yes": True, "no": False}.get(acknowledged),
               "start": None, "end": None}
    rows = alert_queries.list_alerts(conn, filters, PAGE_SIZE, 0)
    names = _names(conn)
    return page(request, "alerts.html", principal, nav="alerts", alerts=rows, names=names,
                machine_id=str(machine_id or ""), state=state, acknowledged=acknowledged,
                refresh_s=15)


@router.get("/alerts/{alert_id}")
def alert_page(request: Request, alert_id: UUID, conn: ConnDep,
               principal: UiReader) -> Response:
    alert = alert_queries.get(conn, alert_id)
    if alert is None:
        raise NotFoundError(f"alert {alert_id} does not exist")
    machine = machines.get(conn, alert["machine_id"])
    assert machine is not None  # alerts cascade with their machine
    chart = chart_context(conn, alert["machine_id"])
    sensors = sensor_queries.list_for_machine(conn, alert["machine_id"], 100, 0)
    chart["sensors"] = [{"id": str(s["id"]), "name": s["name"]} for s in sensors]
    chart["focus"] = {"start": iso(alert["starts_at"]),
                      "end": iso(alert["ends_at"] or alert["last_window_at"]
                                 or alert["starts_at"])}
    deliveries = (webhook_queries.deliveries_for_alert(conn, alert["machine_id"], alert_id, 50)
                  if principal.is_admin else [])
    return page(request, "alert.html", principal, nav="alerts", alert=alert,
                machine=machine, chart=chart, sensors=sensors, deliveries=deliveries,
                alerts=[alert], names={machine["id"]: machine["name"]})
