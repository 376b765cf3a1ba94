"""Operating conditions at the API edge."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from ingest.conditions import (
    ATTRIBUTE_KEY_PATTERN,
    CONDITION_PATTERN,
    AttributeValue,
    attributes_name,
    canonical_condition,
)
from service.schemas.common import Page

ConditionName = Annotated[str, StringConstraints(pattern=CONDITION_PATTERN)]
MAX_ATTRIBUTES = 32


class ConditionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: AwareDatetime
    end: AwareDatetime
    name: ConditionName | None = Field(
        None, description="the condition's name, e.g. 'high-speed'; omitted: derived from "
                          "the attributes ('load=high,rpm=1800')")
    attributes: dict[Annotated[str, StringConstraints(pattern=ATTRIBUTE_KEY_PATTERN)],
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
        """The name as a sensor would send it: attributes and attribute-spelled names
        ("rpm=1800,load=high") in one canonical form (ingest.conditions.attributes_name)."""
        if self.name is None:
            return attributes_name(self.attributes)
        return canonical_condition(self.name)[0]

    def resolved_attributes(self) -> dict[str, AttributeValue]:
        """The attributes given, else those an attribute-spelled name carries."""
        if self.attributes or self.name is None:
            return dict(self.attributes)
        return dict(canonical_condition(self.name)[1])


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
