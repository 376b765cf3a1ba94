from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from service.alerting.events import EVENT_TYPES
from service.schemas.common import Page


def _known_events(events: list[str]) -> list[str]:
    unknown = [e for e in events if e not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type(s) {', '.join(unknown)}; "
                         f"known: {', '.join(EVENT_TYPES)}")
    return list(dict.fromkeys(events))


Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Events = Annotated[list[str], Field(min_length=1, max_length=len(EVENT_TYPES) * 2),
                   AfterValidator(_known_events)]
MachineIds = Annotated[list[UUID], Field(min_length=1, max_length=1000),
                       AfterValidator(lambda ids: list(dict.fromkeys(ids)))]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Url
    events: Events
    machine_ids: MachineIds | None = Field(None, description="null: every machine")
    description: Description | None = None


class WebhookPatch(BaseModel):
    """Only the fields sent change; `machine_ids: null` means every machine."""

    model_config = ConfigDict(extra="forbid")
    url: Url | None = None
    events: Events | None = None
    machine_ids: MachineIds | None = None
    description: Description | None = None
    enabled: bool | None = None


class WebhookOut(BaseModel):
    id: UUID
    url: str
    events: list[str]
    machine_ids: list[UUID] | None
    description: str | None
    enabled: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="whsec_… signing secret; shown only in this response")


class WebhookList(Page):
    items: list[WebhookOut]


class AttemptOut(BaseModel):
    attempted_at: datetime
    status: int | None
    error: str | None
    duration_ms: float


class DeliveryOut(BaseModel):
    id: UUID
    webhook_id: UUID
    message_id: str
    event_type: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    give_up_at: datetime | None
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    recent_attempts: list[AttemptOut] = []

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> DeliveryOut:
        pending = row["state"] == "pending"
        return cls(**{**row, "next_attempt_at": row["next_attempt_at"] if pending else None})


class DeliveryList(Page):
    items: list[DeliveryOut]


class TestQueued(BaseModel):
    message_id: str
    delivery_id: UUID
