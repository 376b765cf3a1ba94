from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from service.alerting.rules import DEFAULT_RULE, MAX_N
from service.schemas.common import Page

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class AlertRuleIn(BaseModel):
    """A whole rule (PUT): omitted fields take the defaults."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = DEFAULT_RULE.enabled
    k: int = Field(DEFAULT_RULE.k, ge=1, le=MAX_N,
                   description="fire when at least k of the last n windows are anomalous")
    n: int = Field(DEFAULT_RULE.n, ge=1, le=MAX_N)
    clear_ratio: float = Field(
        DEFAULT_RULE.clear_ratio, gt=0, le=1,
        description="clear level = threshold - (1 - clear_ratio) * |threshold| "
                    "(clear_ratio * threshold for positive thresholds)")
    clear_windows: int = Field(DEFAULT_RULE.clear_windows, ge=1, le=100_000,
                               description="resolve after this many consecutive windows "
                                           "below the clear level")
    repeat_interval_s: float | None = Field(
        DEFAULT_RULE.repeat_interval_s, ge=1, le=30 * 86400,
        description="re-notify an unacknowledged firing alert this often; null: never")
    no_data_s: float | None = Field(
        DEFAULT_RULE.no_data_s, ge=1, le=30 * 86400,
        description="no_data alert when a sensor of a machine with an active model is "
                    "silent this long; null: off")

    @model_validator(mode="after")
    def _k_within_n(self) -> Self:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must not exceed n ({self.n})")
        return self


class AlertRuleOut(AlertRuleIn):
    model_config = ConfigDict(extra="ignore")
    machine_id: UUID
    is_default: bool = Field(description="true when the machine has no rule of its own")
    updated_at: datetime | None = None


class AlertLinks(BaseModel):
    self: str
    machine: str
    timeline: str


class AlertOut(BaseModel):
    id: UUID
    machine_id: UUID
    type: Literal["anomaly", "no_data"]
    state: Literal["firing", "resolved"]
    acknowledged: bool
    starts_at: datetime
    ends_at: datetime | None
    fired_at: datetime
    resolved_at: datetime | None
    model_version: int | None
    threshold: float | None
    clear_level: float | None
    peak_score: float | None
    peak_at: datetime | None
    last_score: float | None
    last_window_at: datetime | None
    window_count: int
    anomalous_count: int
    sensor_ids: list[UUID]
    silenced: bool
    silence_id: UUID | None
    suppressed_reason: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    last_notified_at: datetime | None
    notify_count: int
    verdict: Literal["false_positive", "confirmed"] | None
    feedback_label: str | None
    feedback_note: str | None
    feedback_at: datetime | None
    links: AlertLinks


class AlertList(Page):
    items: list[AlertOut]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    verdict: Literal["false_positive", "confirmed"]
    label: Label | None = None
    note: Text | None = None


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: AwareDatetime
    end: AwareDatetime
    reason: Text

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class SilenceOut(BaseModel):
    id: UUID
    machine_id: UUID
    start: datetime
    end: datetime
    reason: str
    created_at: datetime


class SilenceList(Page):
    items: list[SilenceOut]
