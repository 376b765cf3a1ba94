"""Baselines, training jobs and model versions at the API edge."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from service.schemas.common import Page


class BaselineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: AwareDatetime
    end: AwareDatetime
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail at insert time.
    note: str | None = Field(None, max_length=2000, pattern=r"^[^\x00]*$")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start "
                             f"({self.start.isoformat()})")
        return self


class BaselineOut(BaseModel):
    id: UUID
    machine_id: UUID
    start: datetime
    end: datetime
    note: str | None
    source: str
    created_at: datetime


class BaselineList(Page):
    items: list[BaselineOut]


class TrainIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str = Field("detector", description="what to train: 'detector' (anomaly "
                        "detector, the default) or 'classifier'")


class JobOut(BaseModel):
    id: UUID
    machine_id: UUID
    target: str
    trigger: str
    slot: datetime | None
    state: str = Field(..., description="queued | running | succeeded | failed")
    error: str | None
    model_version: int | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None


class JobAccepted(BaseModel):
    job_id: UUID
    state: str
    links: dict[str, str]


class JobList(Page):
    items: list[JobOut]


class ModelOut(BaseModel):
    machine_id: UUID
    target: str
    version: int
    algorithm: str
    params: dict[str, Any]
    threshold: float | None
    threshold_config: dict[str, Any]
    embedding_kind: str
    dim: int
    train_start: datetime | None
    train_end: datetime | None
    n_windows: int
    score_stats: dict[str, Any]
    metrics: dict[str, Any]
    fit_seconds: float
    library_versions: dict[str, Any]
    artifact_sha256: str
    artifact_bytes: int
    job_id: UUID | None
    trained_at: datetime
    active: bool
    activated_at: datetime | None


class ModelList(Page):
    items: list[ModelOut]
