"""`/v1/machines/{machine_id}/silences`: maintenance windows. Scoring and alert records go
on; notifications for alerts that fire inside one are held back."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, status

from service.deps import AdminDep, ConnDep, ReaderDep, require_machine
from service.errors import NotFoundError
from service.queries import silences as silence_queries
from service.schemas.alerts import SilenceIn, SilenceList, SilenceOut
from service.schemas.common import Limit, Offset

router = APIRouter(prefix="/machines/{machine_id}/silences", tags=["alerts"])


def _out(row: dict[str, Any]) -> SilenceOut:
    return SilenceOut(id=row["id"], machine_id=row["machine_id"], start=row["start_at"],
                      end=row["end_at"], reason=row["reason"], created_at=row["created_at"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SilenceOut)
def create_silence(machine_id: UUID, body: SilenceIn, conn: ConnDep,
                   _: AdminDep) -> SilenceOut:
    with conn.transaction():
        require_machine(conn, machine_id)
        row = silence_queries.insert(conn, machine_id, body.start, body.end, body.reason)
    return _out(row)


@router.get("", response_model=SilenceList)
def list_silences(machine_id: UUID, conn: ConnDep, _: ReaderDep, active: bool = False,
                  limit: Limit = 100, offset: Offset = 0) -> SilenceList:
    require_machine(conn, machine_id)
    rows = silence_queries.list_silences(conn, machine_id, active, limit + 1, offset)
    more = len(rows) > limit
    return SilenceList(items=[_out(r) for r in rows[:limit]], limit=limit, offset=offset,
                       next_offset=offset + limit if more else None)


@router.delete("/{silence_id}", response_model=SilenceOut)
def delete_silence(machine_id: UUID, silence_id: UUID, conn: ConnDep,
                   _: AdminDep) -> SilenceOut:
    """Ends the silence now; alerts it covered stay recorded as silenced."""
    with conn.transaction():
        row = silence_queries.delete(conn, machine_id, silence_id)
    if row is None:
        raise NotFoundError(f"silence {silence_id} does not exist for machine {machine_id}")
    return _out(row)
