"""`/v1/machines`: the registry of monitored machines."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

import psycopg
from fastapi import APIRouter, Query, Response, status

from service import security
from service.deps import AdminDep, ConnDep, ReaderDep
from service.errors import BadRequestError, ConflictError, NotFoundError
from service.queries import machines
from service.queries import sensors as sensor_queries
from service.schemas.common import Limit, Offset
from service.schemas.machines import (
    CONFIRM_DELETE,
    MachineCreate,
    MachineList,
    MachineOut,
    MachinePatch,
)

router = APIRouter(prefix="/machines", tags=["machines"])
Confirm = Annotated[Literal["delete-data"] | None, Query(
    description=f"'{CONFIRM_DELETE}' to delete a machine or sensor that has stored data")]
LabelFilter = Annotated[list[str] | None, Query(
    description="'key:value' (label equals value) or 'key' (label present); repeatable")]


def _machine_or_404(row: dict[str, Any] | None, machine_id: UUID) -> MachineOut:
    if row is None:
        raise NotFoundError(f"machine {machine_id} does not exist")
    return MachineOut(**row)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MachineOut)
def create_machine(body: MachineCreate, conn: ConnDep, _: AdminDep) -> MachineOut:
    with conn.transaction():
        row = machines.insert(conn, body.name, body.kind, body.location, body.labels)
    if row is None:
        raise ConflictError(f"a machine named {body.name!r} already exists")
    return MachineOut(**row)


def parse_label_filters(filters: list[str]) -> tuple[dict[str, str], list[str]]:
    equal: dict[str, str] = {}
    present: list[str] = []
    for item in filters:
        key, sep, value = item.partition(":")
        if not key:
            raise BadRequestError(f"label filter {item!r} must be 'key:value' or 'key'")
        if sep and equal.get(key, value) != value:
            raise BadRequestError(f"label {key!r} cannot equal both {equal[key]!r} and "
                                  f"{value!r}")
        if sep:
            equal[key] = value
        else:
            present.append(key)
    return equal, present


@router.get("", response_model=MachineList)
def list_machines(conn: ConnDep, _: ReaderDep, limit: Limit = 100, offset: Offset = 0,
                  kind: Annotated[str | None, Query(max_length=100)] = None,
                  label: LabelFilter = None) -> MachineList:
    equal, present = parse_label_filters(label or [])
    rows = machines.list_machines(conn, limit + 1, offset, kind=kind, labels=equal,
                                  label_keys=present)
    more = len(rows) > limit
    return MachineList(items=[MachineOut(**r) for r in rows[:limit]], limit=limit,
                       offset=offset, next_offset=offset + limit if more else None)


@router.get("/{machine_id}", response_model=MachineOut)
def get_machine(machine_id: UUID, conn: ConnDep, _: ReaderDep) -> MachineOut:
    return _machine_or_404(machines.get(conn, machine_id), machine_id)


@router.patch("/{machine_id}", response_model=MachineOut)
def patch_machine(machine_id: UUID, body: MachinePatch, conn: ConnDep,
                  _: AdminDep) -> MachineOut:
    try:
        with conn.transaction():
            row = machines.update(conn, machine_id, body.changes())
    except psycopg.errors.UniqueViolation:
        raise ConflictError(f"a machine named {body.name!r} already exists") from None
    return _machine_or_404(row, machine_id)


@router.delete("/{machine_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_machine(machine_id: UUID, conn: ConnDep, _: AdminDep,
                   confirm: Confirm = None) -> Response:
    with conn.transaction():
        sensor_ids = machines.lock_for_delete(conn, machine_id)
        if sensor_ids is None:
            raise NotFoundError(f"machine {machine_id} does not exist")
        if confirm is None:
            data = sensor_queries.count_data(conn, sensor_ids) if sensor_ids else {}
            refuse_data_loss(f"machine {machine_id}",
                             {**data, **machines.count_records(conn, machine_id)})
        sensor_queries.delete_data(conn, sensor_ids)
        machines.delete(conn, machine_id)
    security.forget_all()  # its sensors' tokens stop at once in this process
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def refuse_data_loss(what: str, data: dict[str, int]) -> None:
    """409 when a delete would lose stored data and the caller has not confirmed it."""
    lost = {key: n for key, n in data.items() if n > 0}
    if not lost:
        return
    listing = ", ".join(f"{n:,} {key}" for key, n in lost.items())
    raise ConflictError(
        f"{what} has stored data ({listing}); deleting it deletes that data permanently. "
        f"Repeat the request with ?confirm={CONFIRM_DELETE} to proceed.",
        data=data, confirm=CONFIRM_DELETE)
