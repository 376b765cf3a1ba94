"""`/`: the fleet overview, worst first, refreshing itself (the same
service.scoring.fleet.overview as `GET /v1/fleet`, from the same read connection: the
replica when EARSHOT_DATABASE_READ_URL is set)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from service.api.machines import parse_label_filters
from service.deps import ReadConnDep, SettingsDep
from service.queries import fleet as fleet_queries
from service.scoring import fleet
from service.scoring.health import LEVELS
from service.ui.auth import UiReader
from service.ui.render import page

router = APIRouter(include_in_schema=False)
REFRESH_S = 10
MAX_MACHINES = 5000
# Worst first, a page shows this many rows (the counts cover the whole fleet): the
# healthy tail of a thousand machines costs the browser seconds to lay out and nobody
# reads it at a glance; `?show=all` lists every machine.
FIRST_ROWS = 200


@router.get("/")
def overview(request: Request, conn: ReadConnDep, settings: SettingsDep, principal: UiReader,
             kind: Annotated[str | None, Query(max_length=100)] = None,
             label: Annotated[str | None, Query(max_length=300)] = None,
             show: Annotated[Literal["worst", "all"], Query()] = "worst") -> Response:
    kind = kind or None
    equal, present = parse_label_filters([label] if label else [])
    rows = fleet.overview(conn, datetime.now(UTC), settings.health_no_data_s, MAX_MACHINES,
                          kind=kind, labels=equal, label_keys=present)
    counts = {state: sum(r["state"] == state for r in rows) for state in LEVELS}
    shown = rows if show == "all" else rows[:FIRST_ROWS]
    return page(request, "overview.html", principal, nav="fleet", machines=shown,
                total=len(rows), counts=counts, kinds=fleet_queries.kinds(conn),
                kind=kind or "", label=label or "", refresh_s=REFRESH_S)
