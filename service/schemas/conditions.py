"""Operating conditions at the API edge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ingest.codec import CONDITION_PATTERN
from service.schemas.common import Page

ConditionName = Annotated[str, StringConstraints(pattern=CONDITION_PATTERN)]
AttributeValue = str | int | float | bool
MAX_ATTRIBUTES = 32


class ConditionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: AwareDatetime
    end: AwareDatetime
    name: ConditionName | None = Field(
        None, description="the condition's name, e.g. 'high-speed'; omitted: derived from "
                          "the attributes ('load=high,rpm=1800')")
    attributes: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")],
                     AttributeValue] = Field(
        default_factory=dict, max_length=MAX_ATTRIBUTES,
        description='e.g. {"rpm": 1800, "load": "high"}')

    @model_validator(mode="after")
    def _valid(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start "
                             f"({self.start.isoformat()})")
        if self.name is None and not self.attributes:
            raise ValueError("a condition needs a name or attributes")
        for key, value in self.attributes.items():
            if isinstance(value, str) and not 0 < len(value) <= 200:
                raise ValueError(f"attribute {key!r}: strings must have 1-200 characters")
        return self

    def resolved_name(self) -> str:
        if self.name is not None:
            return self.name
        return ",".join(f"{k}={v}" for k, v in sorted(self.attributes.items()))[:200]


class ConditionOut(BaseModel):
    id: UUID
    machine_id: UUID
    start: datetime
    end: datetime
    name: str
    attributes: dict[str, Any]
    source: str
    created_at: datetime


class ConditionList(Page):
    items: list[ConditionOut]
