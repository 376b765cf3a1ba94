"""Labels, classifier configuration, predictions, classes, events and event rules at the
API edge. Durations are numbers of seconds; times are RFC 3339 with a zone."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from service.schemas.common import Page
from service.schemas.detectors import MAX_DURATION_S, parse_cron

LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$"
LabelName = Annotated[str, StringConstraints(pattern=LABEL_PATTERN), Field(
    description="1-100 characters: letters, digits, '_', '.', ':' or '-', starting with a "
                "letter or digit (e.g. off, running, impact, dog_bark)")]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: AwareDatetime
    end: AwareDatetime = Field(description="exclusive")
    label: LabelName

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start "
                             f"({self.start.isoformat()})")
        return self


class LabelOut(BaseModel):
    id: UUID
    machine_id: UUID
    start: datetime
    end: datetime
    label: str
    created_at: datetime


class LabelList(Page):
    items: list[LabelOut]


class LabelTrackImported(BaseModel):
    machine_id: UUID
    sensor_id: UUID
    start: datetime = Field(description="the time the track's 0 s stands for")
    created: int
    items: list[LabelOut]


def _cron(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    try:
        parse_cron(value)
    except ValueError as exc:
        raise ValueError(f"invalid crontab {value!r}: {exc}; expected 5 fields 'minute hour "
                         "day month day_of_week', e.g. '0 3 * * *' (UTC)") from exc
    return value


class ClassifierConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    algorithm: str = Field(..., min_length=1, max_length=100,
                           description="one of the names GET /v1/classifiers lists")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="algorithm parameters; omitted ones default")
    retrain_cron: str | None = Field(
        None, max_length=200, description="5-field crontab, UTC; null: train on request")
    training_window: float | None = Field(
        None, gt=0, le=MAX_DURATION_S,
        description="seconds: train on labels ending within the last N seconds; null: all")
    activation: Literal["auto", "manual"] = Field(
        "auto", description="auto: a newly trained version goes live at once")

    _valid_cron = field_validator("retrain_cron")(_cron)


class ClassifierConfigOut(BaseModel):
    machine_id: UUID
    target: str
    algorithm: str
    params: dict[str, Any]
    retrain_cron: str | None
    training_window: float | None
    activation: str
    updated_at: datetime
    next_retrain_at: datetime | None = None


class ClassifierCatalogue(BaseModel):
    algorithms: list[dict[str, Any]]


class PredictionOut(BaseModel):
    t: datetime = Field(description="window start")
    sensor_id: UUID
    model_version: int
    label: str = Field(description="the most probable class")
    confidence: float = Field(description="its probability")
    probabilities: dict[str, float]


class PredictionPage(BaseModel):
    items: list[PredictionOut]
    limit: int
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page")


class ClassBucket(BaseModel):
    t: datetime = Field(description="bucket start")
    n: int = Field(description="windows predicted in the bucket")
    dominant: str | None = Field(description="the most frequent class; null if empty")
    fractions: dict[str, float] = Field(description="share of the windows per class")


class Classes(BaseModel):
    machine_id: UUID
    start: datetime
    end: datetime
    step: int = Field(description="bucket width in seconds")
    buckets: list[ClassBucket]


class EventOut(BaseModel):
    label: str
    start: datetime
    end: datetime
    confidence: float = Field(description="mean smoothed class probability in the event")
    sensor_id: UUID
    open: bool = Field(description="the event reaches the newest window in the range")


class EventList(BaseModel):
    machine_id: UUID
    start: datetime
    end: datetime
    items: list[EventOut]
    truncated: bool = Field(description="the range held more windows than one request "
                                        "reads; events near its end are missing")
    params: dict[str, dict[str, Any]] = Field(description="detection parameters per class")


class EventRuleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notify_labels: Annotated[list[LabelName], Field(max_length=100),
                             AfterValidator(_unique)] = Field(
        default_factory=list, description="classes whose events send event.detected")
    params: dict[str, Any] = Field(
        default_factory=dict, description="event detection parameters for every class: "
        "smoothing (windows), on, off (hysteresis thresholds), min_duration_s, merge_gap_s")
    class_params: dict[LabelName, dict[str, Any]] = Field(
        default_factory=dict, max_length=100,
        description="per-class overrides of `params` (omitted keys: from `params`)")
    state_label: LabelName | None = Field(
        None, description="operating state (e.g. off): while it is the latest predicted "
                          "class, anomaly alerts are recorded but not sent")
    state_max_age: float = Field(60.0, gt=0, le=86400,
                                 description="seconds a predicted state stays valid")


class EventRuleOut(BaseModel):
    machine_id: UUID
    notify_labels: list[str]
    params: dict[str, Any]
    class_params: dict[str, dict[str, Any]]
    state_label: str | None
    state_max_age: float
    updated_at: datetime | None = Field(description="null: the defaults (no rule stored)")
