"""The fleet embedding at the API edge."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.common import Page


class FleetParams(BaseModel):
    """What a run may change (POST /v1/fleet/embedding/train); defaults fit a nightly run."""

    model_config = ConfigDict(extra="forbid")
    max_windows: int = Field(8000, ge=10, le=20_000, description="windows of stored audio "
                             "trained on, spread evenly over all of it (64 kB each)")
    max_epochs: int = Field(30, ge=1, le=200)
    max_train_seconds: float = Field(1800.0, gt=0, le=6 * 3600)
    random_state: int = Field(0, ge=0, le=2**31 - 1)


class FleetEmbeddingOut(BaseModel):
    """One training run; a run that succeeded is version `version`, the embedding kind
    `fleet-v<version>`."""

    id: UUID
    version: int | None
    kind: str | None = Field(None, description="the embedding kind of this version")
    state: str
    trigger: str
    slot: date | None
    params: dict[str, Any]
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    trained_at: datetime | None
    n_recordings: int | None
    n_windows: int | None
    aux_classes: list[str] | None
    dim: int | None
    metrics: dict[str, Any] | None
    fit_seconds: float | None
    library_versions: dict[str, str] | None
    artifact_sha256: str | None
    onnx_sha256: str | None

    @classmethod
    def of(cls, row: dict[str, Any]) -> FleetEmbeddingOut:
        kind = f"fleet-v{row['version']}" if row["version"] is not None else None
        return cls(**{k: v for k, v in row.items() if k != "heartbeat_at"}, kind=kind)


class FleetEmbeddingList(Page):
    latest_version: int | None = Field(description="the newest version that succeeded")
    items: list[FleetEmbeddingOut]
