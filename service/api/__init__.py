"""The `/v1` API, one router module per resource."""

from __future__ import annotations

from fastapi import APIRouter

from service.api import api_keys, health, ingest, machines, sensors

v1 = APIRouter(prefix="/v1")
v1.include_router(api_keys.router)
v1.include_router(machines.router)
v1.include_router(sensors.router)
v1.include_router(ingest.router)

__all__ = ["health", "v1"]
