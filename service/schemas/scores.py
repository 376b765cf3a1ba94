"""Scores, timelines and health at the API edge."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field


class ScoreOut(BaseModel):
    t: datetime
    sensor_id: UUID
    score: float
    threshold: float
    anomalous: bool
    model_version: int


class ScorePage(BaseModel):
    items: list[ScoreOut]
    limit: int
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page")


class Bucket(BaseModel):
    t: datetime = Field(description="bucket start")
    n: int = Field(description="windows scored in the bucket")
    mean: float | None = Field(description="mean score; null for an empty bucket")
    max: float | None
    anomalous: int = Field(description="windows above their model's threshold")


class Timeline(BaseModel):
    machine_id: UUID
    start: datetime = Field(description="start of the first bucket (at or before `start`)")
    end: datetime = Field(description="end of the last bucket (at or after `end`)")
    step: int = Field(description="bucket width in seconds")
    source: Literal["raw", "rollup-1m", "rollup-1h"]
    threshold: float | None = Field(description="the active detector's threshold")
    model_version: int | None
    buckets: list[Bucket]
    alerts: list[dict[str, Any]] = Field(description="alert spans overlapping the range")


class ActiveModel(BaseModel):
    version: int
    algorithm: str
    threshold: float | None
    embedding_kind: str
    dim: int
    activated_at: datetime | None
    trained_at: datetime


class Recent(BaseModel):
    seconds: float
    windows: int
    anomalous: int


HealthLevel = Literal["ok", "watch", "alarm", "no_data", "untrained"]


class OpenAlert(BaseModel):
    id: UUID
    type: str
    starts_at: datetime
    acknowledged: bool


class Health(BaseModel):
    machine_id: UUID
    state: HealthLevel = Field(description="alarm: an anomaly alert is firing; watch: most "
                               "recent windows above the threshold, no alert yet; ok; "
                               "no_data; untrained")
    reason: str = Field(description="why, in words")
    checked_at: datetime
    latest: ScoreOut | None = Field(description="the newest scored window")
    recent: Recent = Field(description="windows in the last `seconds` before the newest one")
    model: ActiveModel | None
    open_alerts: list[OpenAlert] = Field(description="firing alerts of the machine")
