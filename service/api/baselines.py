"""`/v1/machines/{id}/baselines`: time ranges of normal operation (detector training
data)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response, status

from service.deps import AdminDep, ConnDep, ReaderDep, require_machine
from service.errors import NotFoundError
from service.queries import baselines
from service.schemas.common import Limit, Offset
from service.schemas.training import BaselineIn, BaselineList, BaselineOut

router = APIRouter(prefix="/machines/{machine_id}/baselines", tags=["baselines"])


def baseline_out(row: dict[str, Any]) -> BaselineOut:
    return BaselineOut(id=row["id"], machine_id=row["machine_id"], start=row["start_at"],
                       end=row["end_at"], note=row["note"], source=row["source"],
                       created_at=row["created_at"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=BaselineOut)
def create_baseline(machine_id: UUID, body: BaselineIn, conn: ConnDep,
                    _: AdminDep) -> BaselineOut:
    with conn.transaction():
        require_machine(conn, machine_id)
        row = baselines.insert_baseline(conn, machine_id, body.start, body.end, body.note,
                                        "user")
    return baseline_out(row)


@router.get("", response_model=BaselineList)
def list_baselines(machine_id: UUID, conn: ConnDep, _: ReaderDep, limit: Limit = 100,
                   offset: Offset = 0) -> BaselineList:
    require_machine(conn, machine_id)
    rows = baselines.list_baselines(conn, machine_id, limit + 1, offset)
    more = len(rows) > limit
    return BaselineList(items=[baseline_out(r) for r in rows[:limit]], limit=limit,
                        offset=offset, next_offset=offset + limit if more else None)


@router.delete("/{baseline_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_baseline(machine_id: UUID, baseline_id: UUID, conn: ConnDep,
                    _: AdminDep) -> Response:
    with conn.transaction():
        row = baselines.delete_baseline(conn, machine_id, baseline_id)
    if row is None:
        raise NotFoundError(f"baseline {baseline_id} of machine {machine_id} does not exist")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
