from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from service.schemas.common import Name, Page


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    role: Literal["admin", "read"]


class ApiKeyOut(BaseModel):
    id: UUID
    name: str
    role: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyCreated(ApiKeyOut):
    key: str


class ApiKeyList(Page):
    items: list[ApiKeyOut]
