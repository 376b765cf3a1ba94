"""Machines at the API edge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from service.schemas.common import Name, Page

Kind = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Location = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
# No ':' in keys: the list filter `?label=key:value` splits at the first colon.
LabelKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")]
LabelValue = Annotated[str, StringConstraints(max_length=200)]
Labels = Annotated[dict[LabelKey, LabelValue], Field(max_length=64)]
CONFIRM_DELETE = "delete-data"


class MachineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    kind: Kind
    location: Location | None = None
    labels: Labels = Field(default_factory=dict)


class MachinePatch(BaseModel):
    """Only the fields present change; `labels` replaces the whole label set."""

    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    kind: Kind | None = None
    location: Location | None = None
    labels: Labels | None = None

    @model_validator(mode="after")
    def _required_stay_set(self) -> MachinePatch:
        for field in ("name", "kind", "labels"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null (omit it to keep the current value)")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(include=self.model_fields_set)


class MachineOut(BaseModel):
    id: UUID
    name: str
    kind: str
    location: str | None
    labels: dict[str, str]
    created_at: datetime
    updated_at: datetime


class MachineList(Page):
    items: list[MachineOut]
