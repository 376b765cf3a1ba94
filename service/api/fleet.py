"""`/v1/fleet`: every machine's health level with its newest score, open alerts and last
data, worst first (the dashboard overview reads the same function). Read from the replica
when one is configured (EARSHOT_DATABASE_READ_URL): stale by its lag."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from service.api.machines import LabelFilter, parse_label_filters
from service.deps import ReadConnDep, ReaderDep, SettingsDep
from service.schemas.fleet import Fleet, FleetMachine
from service.scoring import fleet
from service.scoring.health import LEVELS

router = APIRouter(tags=["scores"])


@router.get("/fleet", response_model=Fleet)
def get_fleet(conn: ReadConnDep, settings: SettingsDep, _: ReaderDep,
              kind: Annotated[str | None, Query(max_length=100)] = None,
              label: LabelFilter = None,
              limit: Annotated[int, Query(ge=1, le=5000)] = 1000) -> Fleet:
    equal, present = parse_label_filters(label or [])
    now = datetime.now(UTC)
    rows = fleet.overview(conn, now, settings.health_no_data_s, limit, kind=kind,
                          labels=equal, label_keys=present)
    counts = {state: sum(r["state"] == state for r in rows) for state in LEVELS}
    return Fleet(checked_at=now, counts=counts, items=[FleetMachine(**r) for r in rows])
