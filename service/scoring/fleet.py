"""The fleet overview: every machine's health level (service.scoring.health.level), its
newest score against its threshold, open alerts and last data, worst first. Shared by
`GET /v1/fleet` and the dashboard's overview page."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import psycopg

from service.queries import fleet as q
from service.scoring.health import REASONS, HealthInputs, level, severity


def _ratio(row: dict[str, Any]) -> float:
    """Newest score over its threshold; a sort key within one level."""
    score, threshold = row["latest_score"], row["latest_threshold"]
    if score is None or not threshold:
        return 0.0
    return float(score) / float(threshold)


def overview(conn: psycopg.Connection, now: datetime, no_data_s: float, limit: int, *,
             kind: str | None = None, labels: Mapping[str, str] | None = None,
             label_keys: list[str] | None = None) -> list[dict[str, Any]]:
    rows = q.machines(conn, limit, no_data_s, kind=kind, labels=labels,
                      label_keys=label_keys)
    for row in rows:
        inputs = HealthInputs(trained=row["model_version"] is not None,
                              latest_t=row["latest_t"], recent_windows=row["recent_windows"],
                              recent_anomalous=row["recent_anomalous"],
                              firing_anomaly=row["firing_anomaly"])
        row["state"] = level(inputs, now, no_data_s)
        row["reason"] = REASONS[row["state"]]
        row["score_ratio"] = _ratio(row)
    rows.sort(key=lambda r: (severity(r["state"]), -r["score_ratio"], r["name"]))
    return rows
