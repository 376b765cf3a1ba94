"""The two calls other parts of the service make into alerting, inside their own
transaction (so an alert state change and its webhook outbox row commit together with the
scores or model that caused them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg


@dataclass(frozen=True)
class ScoredWindow:
    t: datetime
    sensor_id: UUID
    score: float
    threshold: float
    anomalous: bool


def on_scored(conn: psycopg.Connection, machine_id: UUID, model_version: int,
              windows: list[ScoredWindow]) -> None:
    """Evaluate the machine's alert rule after `windows` (sorted by t) were scored."""
    from service.alerting.engine import evaluate_scored

    evaluate_scored(conn, machine_id, model_version, windows)


def emit_event(conn: psycopg.Connection, event_type: str, data: dict[str, Any],
               machine_id: UUID | None) -> None:
    """Queue a webhook event (e.g. `model.trained`) for every matching endpoint."""
    from service.alerting.outbox import enqueue_event

    enqueue_event(conn, event_type, data, machine_id)
