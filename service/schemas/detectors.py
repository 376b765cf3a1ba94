"""Detector configuration and algorithm catalogue at the API edge.

Durations are numbers of seconds (`training_window`, `backfill`); cron strings are the
five crontab fields `minute hour day month day_of_week`, evaluated in UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_DURATION_S = 5 * 366 * 86400.0
DEFAULT_BACKFILL_S = 86400.0


def parse_cron(expr: str) -> CronTrigger:
    """The UTC trigger of a 5-field crontab string; ValueError says what is wrong."""
    return CronTrigger.from_crontab(expr, timezone=UTC)


class DetectorConfigIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    algorithm: str = Field(..., min_length=1, max_length=100,
                           description="one of the names GET /v1/detectors lists")
    params: dict[str, Any] = Field(default_factory=dict,
                                   description="algorithm parameters; omitted ones default")
    threshold: dict[str, Any] = Field(default_factory=dict,
                                      description='{"method": "quantile"|"gamma", "q": 0.99}')
    retrain_cron: str | None = Field(
        None, max_length=200,
        description="5-field crontab (minute hour day month day_of_week), UTC; "
                    "null: train only on request")
    training_window: float | None = Field(
        None, gt=0, le=MAX_DURATION_S,
        description="seconds: train on baselines within the last N seconds; null: all")
    activation: Literal["auto", "manual"] = Field(
        "auto", description="auto: a newly trained version goes live at once; manual: "
                            "POST …/models/{version}/activate")
    backfill: float = Field(
        DEFAULT_BACKFILL_S, ge=0, le=MAX_DURATION_S,
        description="seconds of recent windows scored when the first model activates")

    @field_validator("retrain_cron")
    @classmethod
    def _valid_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = " ".join(value.split())
        try:
            parse_cron(value)
        except ValueError as exc:
            raise ValueError(
                f"invalid crontab {value!r}: {exc}; expected 5 fields "
                "'minute hour day month day_of_week', e.g. '0 3 * * *' (UTC)") from exc
        return value


class DetectorConfigOut(BaseModel):
    machine_id: UUID
    target: str
    algorithm: str
    params: dict[str, Any]
    threshold: dict[str, Any]
    retrain_cron: str | None
    training_window: float | None = Field(None, description="seconds")
    activation: str
    backfill: float = Field(..., description="seconds")
    updated_at: datetime
    next_retrain_at: datetime | None = None


class AlgorithmCatalogue(BaseModel):
    algorithms: list[dict[str, Any]]
    threshold: list[dict[str, Any]]
