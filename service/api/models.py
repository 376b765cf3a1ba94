"""`/v1/machines/{id}/models`: trained versions (never the artifact bytes) and
activation / rollback."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query

from service.deps import AdminDep, ConnDep, ReaderDep, require_machine
from service.errors import NotFoundError
from service.queries import model_configs
from service.queries import models as model_queries
from service.schemas.common import Limit, Offset
from service.schemas.detectors import DEFAULT_BACKFILL_S
from service.schemas.training import ModelList, ModelOut
from service.training import models

router = APIRouter(prefix="/machines/{machine_id}/models", tags=["models"])
Target = Annotated[str, Query(pattern="^(detector|classifier)$",
                              description="which kind of model")]
Version = Annotated[int, Path(ge=1, le=2**31 - 1, description="model version")]


@router.get("", response_model=ModelList)
def list_models(machine_id: UUID, conn: ConnDep, _: ReaderDep, target: Target = "detector",
                limit: Limit = 100, offset: Offset = 0) -> ModelList:
    require_machine(conn, machine_id)
    rows = model_queries.list_models(conn, machine_id, target, limit + 1, offset)
    more = len(rows) > limit
    return ModelList(items=[ModelOut(**r) for r in rows[:limit]], limit=limit, offset=offset,
                     next_offset=offset + limit if more else None)


@router.get("/{version}", response_model=ModelOut)
def get_model(machine_id: UUID, version: Version, conn: ConnDep, _: ReaderDep,
              target: Target = "detector") -> ModelOut:
    row = model_queries.get_model(conn, machine_id, target, version)
    if row is None:
        require_machine(conn, machine_id)
        raise NotFoundError(f"machine {machine_id} has no {target} version {version}")
    return ModelOut(**row)


@router.post("/{version}/activate", response_model=ModelOut)
def activate_model(machine_id: UUID, version: Version, conn: ConnDep, _: AdminDep,
                   target: Target = "detector") -> ModelOut:
    with conn.transaction():
        config = model_configs.get_config(conn, machine_id, target)
        backfill_s = config["backfill_s"] if config is not None else DEFAULT_BACKFILL_S
        if models.activate(conn, machine_id, target, version, backfill_s) is None:
            require_machine(conn, machine_id)
            raise NotFoundError(f"machine {machine_id} has no {target} version {version}")
        row = model_queries.get_model(conn, machine_id, target, version)
    assert row is not None
    return ModelOut(**row)
