"""`/v1/machines/{id}/conditions`: the machine's operating condition over time ranges
(named mode and/or attributes). Detector training gives every window the condition whose
range covers it; see README "Operating conditions"."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Response, status

from service.deps import AdminDep, ConnDep, ReaderDep, require_machine
from service.errors import NotFoundError
from service.queries import conditions
from service.schemas.common import Limit, Offset
from service.schemas.conditions import ConditionIn, ConditionList, ConditionOut

router = APIRouter(prefix="/machines/{machine_id}/conditions", tags=["conditions"])


def condition_out(row: dict[str, Any]) -> ConditionOut:
    return ConditionOut(id=row["id"], machine_id=row["machine_id"], start=row["start_at"],
                        end=row["end_at"], name=row["name"], attributes=row["attributes"],
                        source=row["source"], created_at=row["created_at"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ConditionOut)
def create_condition(machine_id: UUID, body: ConditionIn, conn: ConnDep,
                     _: AdminDep) -> ConditionOut:
    with conn.transaction():
        require_machine(conn, machine_id)
        row = conditions.insert_condition(conn, machine_id, body.start, body.end,
                                          body.resolved_name(), body.resolved_attributes(), "user")
    return condition_out(row)


@router.get("", response_model=ConditionList)
def list_conditions(machine_id: UUID, conn: ConnDep, _: ReaderDep, limit: Limit = 100,
                    offset: Offset = 0) -> ConditionList:
    require_machine(conn, machine_id)
    rows = conditions.list_conditions(conn, machine_id, limit + 1, offset)
    more = len(rows) > limit
    return ConditionList(items=[condition_out(r) for r in rows[:limit]], limit=limit,
                         offset=offset, next_offset=offset + limit if more else None)


@router.delete("/{condition_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_condition(machine_id: UUID, condition_id: UUID, conn: ConnDep,
                     _: AdminDep) -> Response:
    with conn.transaction():
        row = conditions.delete_condition(conn, machine_id, condition_id)
    if row is None:
        raise NotFoundError(f"condition {condition_id} of machine {machine_id} does not exist")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
