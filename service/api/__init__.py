"""The `/v1` API, one router module per resource."""

from __future__ import annotations

from fastapi import APIRouter

from service.api import api_keys, health

v1 = APIRouter(prefix="/v1")
v1.include_router(api_keys.router)

__all__ = ["health", "v1"]
