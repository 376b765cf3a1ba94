"""`/setup` (admin): register a machine with its sensor (the ingest token shown once, with
a ready `earshot sensor` command), and webhooks with their deliveries. Registration calls
the API's own create functions, so validation and storage are the API's."""

from __future__ import annotations

from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from service.alerting.events import EVENT_TYPES
from service.api import machines as machines_api
from service.api import sensors as sensors_api
from service.deps import ConnDep
from service.errors import ServiceError
from service.queries import webhooks as webhook_queries
from service.schemas.machines import MachineCreate
from service.schemas.sensors import SensorCreate
from service.ui.auth import UiAdmin
from service.ui.render import page

router = APIRouter(include_in_schema=False)
Field = Annotated[str, Form(max_length=2000)]


@router.get("/setup")
def setup_page(request: Request, conn: ConnDep, principal: UiAdmin) -> Response:
    hooks = webhook_queries.list_webhooks(conn, 100, 0)
    for hook in hooks:
        hook["deliveries"] = webhook_queries.list_deliveries(conn, hook["id"], None, 5, 0)
    return page(request, "setup.html", principal, nav="setup", webhooks=hooks,
                event_types=EVENT_TYPES)


def _labels(text: str) -> dict[str, str]:
    """"key=value" per line or comma."""
    pairs = [item.strip() for line in text.splitlines() for item in line.split(",")]
    return dict(p.split("=", 1) for p in pairs if "=" in p)


def _validation_message(exc: pydantic.ValidationError) -> str:
    first: Any = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg"))


@router.post("/setup/machines")
def register(request: Request, conn: ConnDep, principal: UiAdmin, name: Field, kind: Field,
             sensor_name: Field, location: Field = "", labels: Field = "",
             embedding_kind: Field = "logmel-v1") -> Response:
    try:
        machine_in = MachineCreate(name=name, kind=kind, location=location or None,
                                   labels=_labels(labels))
        sensor_in = SensorCreate(name=sensor_name, embedding={"kind": embedding_kind})
        machine = machines_api.create_machine(machine_in, conn, principal)
        sensor = sensors_api.create_sensor(machine.id, sensor_in, conn, principal)
    except pydantic.ValidationError as exc:
        return page(request, "_registered.html", principal, status=422,
                    error=_validation_message(exc))
    except ServiceError as exc:
        return page(request, "_registered.html", principal, status=exc.status,
                    error=exc.detail)
    base = str(request.base_url).rstrip("/")
    return page(request, "_registered.html", principal, status=201, machine=machine,
                sensor=sensor, base_url=base)
