"""`/v1/machines/{id}/sensors` and `/v1/sensors/{id}`: sensors and their ingest tokens."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from fastapi import APIRouter, Response, status

from service import security
from service.api.machines import Confirm, refuse_data_loss
from service.deps import AdminDep, ConnDep, ReaderDep, require_machine
from service.errors import ConflictError, NotFoundError, UnprocessableError
from service.fleet import kinds
from service.queries import sensors as sensor_queries
from service.queries.sensors import AudioPolicy
from service.schemas.common import Limit, Offset
from service.schemas.sensors import (
    SensorCreate,
    SensorCreated,
    SensorList,
    SensorOut,
    SensorPatch,
    check_window,
)

router = APIRouter(tags=["sensors"])


def _sensor_or_404(row: dict[str, Any] | None, sensor_id: UUID) -> SensorOut:
    if row is None:
        raise NotFoundError(f"sensor {sensor_id} does not exist")
    return SensorOut.from_row(row)


@router.post("/machines/{machine_id}/sensors", status_code=status.HTTP_201_CREATED,
             response_model=SensorCreated)
def create_sensor(machine_id: UUID, body: SensorCreate, conn: ConnDep,
                  _: AdminDep) -> SensorCreated:
    token = security.new_token(security.INGEST_TOKEN_PREFIX)
    assert body.embedding.dim is not None  # resolved by the schema
    with conn.transaction():
        require_machine(conn, machine_id)
        kinds.require_version(conn, body.embedding.kind)
        row = sensor_queries.insert(conn, machine_id, body.name, body.embedding.kind,
                                    body.embedding.dim, body.resolved_window_s(),
                                    body.sample_rate, security.digest(token),
                                    AudioPolicy(keep=body.audio.policy != "off",
                                                codec=body.audio.codec or "flac"))
    if row is None:
        raise ConflictError(f"machine {machine_id} already has a sensor named {body.name!r}")
    return SensorCreated(**SensorOut.from_row(row).model_dump(), ingest_token=token)


@router.get("/machines/{machine_id}/sensors", response_model=SensorList)
def list_sensors(machine_id: UUID, conn: ConnDep, _: ReaderDep, limit: Limit = 100,
                 offset: Offset = 0) -> SensorList:
    require_machine(conn, machine_id)
    rows = sensor_queries.list_for_machine(conn, machine_id, limit + 1, offset)
    more = len(rows) > limit
    return SensorList(items=[SensorOut.from_row(r) for r in rows[:limit]], limit=limit,
                      offset=offset, next_offset=offset + limit if more else None)


@router.get("/sensors/{sensor_id}", response_model=SensorOut)
def get_sensor(sensor_id: UUID, conn: ConnDep, _: ReaderDep) -> SensorOut:
    return _sensor_or_404(sensor_queries.get(conn, sensor_id), sensor_id)


@router.patch("/sensors/{sensor_id}", response_model=SensorOut)
def patch_sensor(sensor_id: UUID, body: SensorPatch, conn: ConnDep, _: AdminDep) -> SensorOut:
    try:
        with conn.transaction():
            current = _sensor_or_404(sensor_queries.get(conn, sensor_id), sensor_id)
            try:
                check_window(current.embedding.kind, body.window_s)
            except ValueError as exc:
                raise UnprocessableError(str(exc)) from None
            row = sensor_queries.update(conn, sensor_id, body.changes())
    except psycopg.errors.UniqueViolation:
        raise ConflictError(f"the machine already has a sensor named {body.name!r}") from None
    return _sensor_or_404(row, sensor_id)


@router.delete("/sensors/{sensor_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_sensor(sensor_id: UUID, conn: ConnDep, _: AdminDep,
                  confirm: Confirm = None) -> Response:
    with conn.transaction():
        if not sensor_queries.lock_for_delete(conn, sensor_id):
            raise NotFoundError(f"sensor {sensor_id} does not exist")
        if confirm is None:
            refuse_data_loss(f"sensor {sensor_id}", sensor_queries.count_data(conn, [sensor_id]))
        sensor_queries.delete_data(conn, [sensor_id])
        sensor_queries.delete(conn, sensor_id)
    security.forget_all()  # its token stops at once in this process (cached principals)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/sensors/{sensor_id}/token", response_model=SensorCreated)
def rotate_token(sensor_id: UUID, conn: ConnDep, _: AdminDep) -> SensorCreated:
    """A new ingest token, shown once; the old one stops working when this returns."""
    token = security.new_token(security.INGEST_TOKEN_PREFIX)
    with conn.transaction():
        row = sensor_queries.rotate_token(conn, sensor_id, security.digest(token))
    security.forget_all()
    sensor = _sensor_or_404(row, sensor_id)
    return SensorCreated(**sensor.model_dump(), ingest_token=token)

