"""The fleet overview at the API edge."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from service.schemas.scores import HealthLevel


class FleetMachine(BaseModel):
    id: UUID
    name: str
    kind: str
    location: str | None
    labels: dict[str, str]
    state: HealthLevel
    reason: str
    model_version: int | None = Field(description="the active detector's version")
    algorithm: str | None
    threshold: float | None = Field(description="the active detector's threshold")
    latest_t: datetime | None = Field(description="the newest scored window, when it is "
                                      "within the no-data horizon")
    last_seen_at: datetime | None = Field(description="when a sensor of the machine last "
                                          "sent data")
    latest_score: float | None
    latest_threshold: float | None = Field(description="threshold the newest window met")
    score_ratio: float = Field(description="latest_score / latest_threshold (0 without one)")
    recent_windows: int
    recent_anomalous: int
    firing: int = Field(description="open (firing) alerts of any type")
    firing_anomaly: int
    unacknowledged: int = Field(description="open alerts nobody acknowledged")


class Fleet(BaseModel):
    checked_at: datetime
    counts: dict[str, int] = Field(description="machines per health level")
    items: list[FleetMachine] = Field(description="worst first: alarm, watch, no_data, "
                                      "untrained, ok; then by score/threshold")
