"""`/machines/{id}/models`: detector and classifier versions with training metrics and
thresholds (the active one marked), rollback, the detector choice, training and jobs."""

from __future__ import annotations

import importlib
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from service.deps import ConnDep
from service.errors import NotFoundError
from service.queries import jobs, machines, model_configs
from service.queries import models as model_queries
from service.ui.auth import UiReader
from service.ui.render import page

router = APIRouter(include_in_schema=False)


def _algorithms() -> list[str]:
    # Imported at call time: the API warms the ML stack in the background at start-up.
    registry = importlib.import_module("detectors.registry")
    return sorted(registry.ALGORITHMS)


@router.get("/machines/{machine_id}/models")
def models_page(request: Request, machine_id: UUID, conn: ConnDep,
                principal: UiReader) -> Response:
    machine = machines.get(conn, machine_id)
    if machine is None:
        raise NotFoundError(f"machine {machine_id} does not exist")
    versions = {target: model_queries.list_models(conn, machine_id, target, 50, 0)
                for target in ("detector", "classifier")}
    return page(request, "models.html", principal, nav="fleet", machine=machine,
                versions=versions, jobs=jobs.list_machine_jobs(conn, machine_id, 20, 0),
                config=model_configs.get_config(conn, machine_id, "detector"),
                algorithms=_algorithms() if principal.is_admin else [])
