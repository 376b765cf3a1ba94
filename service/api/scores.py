"""`/v1/machines/{machine_id}/scores|timeline|health`: what the detectors said. Scores and
timelines read from the replica when one is configured (EARSHOT_DATABASE_READ_URL)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from service.api.windows import End, Start, decode_cursor, encode_cursor, time_range
from service.deps import ConnDep, ReadConnDep, ReaderDep, SettingsDep, require_machine
from service.queries import scores as score_queries
from service.schemas.scores import Health, ScoreOut, ScorePage, Timeline
from service.scoring import health, timeline

router = APIRouter(prefix="/machines", tags=["scores"])
SOURCE_HEADER = "X-Earshot-Source"


@router.get("/{machine_id}/scores", response_model=ScorePage)
def list_scores(machine_id: UUID, conn: ReadConnDep, _: ReaderDep, start: Start = None,
                end: End = None, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                cursor: Annotated[str | None, Query(max_length=500)] = None) -> ScorePage:
    """Per-window scores in [start, end), oldest first, with keyset pagination."""
    start, end = time_range(start, end)
    after = decode_cursor(cursor) if cursor else None
    require_machine(conn, machine_id)
    rows = score_queries.page(conn, machine_id, start, end, after, limit + 1)
    more = len(rows) > limit
    return ScorePage(items=[ScoreOut(**r) for r in rows[:limit]], limit=limit,
                     next_cursor=encode_cursor(rows[limit - 1]) if more else None)


@router.get("/{machine_id}/timeline", response_model=Timeline)
def get_timeline(machine_id: UUID, conn: ReadConnDep, _: ReaderDep, response: Response,
                 start: Start = None, end: End = None,
                 step: Annotated[str | None, Query(
                     max_length=20, description="bucket width: 30s, 5m, 1h, 1d, 1w or "
                     "seconds; default: a nice step giving at most ~1000 buckets")] = None,
                 ) -> Timeline:
    """Gap-filled score buckets: long steps come from rollups (see `source`)."""
    start, end = time_range(start, end)
    step_s = timeline.parse_step(step) if step else None
    require_machine(conn, machine_id)
    found = timeline.answer(conn, machine_id, start, end, step_s)
    response.headers[SOURCE_HEADER] = found["source"]
    return Timeline(**found)


@router.get("/{machine_id}/health", response_model=Health)
def get_health(machine_id: UUID, conn: ConnDep, settings: SettingsDep, _: ReaderDep) -> Health:
    """ok, watch, alarm (an anomaly alert fires), no_data or untrained, with the newest
    score, the active model and the open alerts."""
    require_machine(conn, machine_id)
    found = health.machine_health(conn, machine_id, datetime.now(UTC),
                                  settings.health_no_data_s)
    return Health(**found)
