"""A machine's health level, read at a glance by a maintenance team and agreeing with its
alerts (in the spirit of Augury's acceptable / monitor / alarm).

Levels, first match wins:
- `untrained`: no active detector;
- `alarm`: an anomaly alert is firing (acknowledged or not: it is still open), whatever
  the newest windows say;
- `no_data`: no window scored in the last `health_no_data_s`;
- `watch`: most windows of the last RECENT_S seconds of data are above the threshold but
  no alert fires (yet: the alert rule debounces, or the machine has no rule);
- `ok` otherwise.
The fleet overview (service.queries.fleet) and `/v1/machines/{id}/health` both classify
with `level`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from service.queries import alerts as alert_queries
from service.queries import scores as q

RECENT_S = 60.0
LEVELS = ("alarm", "watch", "no_data", "untrained", "ok")  # worst first
REASONS = {
    "untrained": "no active detector: train one from a baseline",
    "alarm": "an anomaly alert is firing",
    "no_data": "no window scored recently",
    "watch": "most recent windows are above the threshold; no alert fires yet",
    "ok": "recent windows are below the threshold",
}


@dataclass(frozen=True)
class HealthInputs:
    trained: bool
    latest_t: datetime | None
    recent_windows: int
    recent_anomalous: int
    firing_anomaly: int


def level(inputs: HealthInputs, now: datetime, no_data_s: float) -> str:
    if not inputs.trained:
        return "untrained"
    if inputs.firing_anomaly > 0:
        return "alarm"
    if inputs.latest_t is None or inputs.latest_t < now - timedelta(seconds=no_data_s):
        return "no_data"
    if 2 * inputs.recent_anomalous > inputs.recent_windows:
        return "watch"
    return "ok"


def severity(state: str) -> int:
    """0 for the worst level: sort keys for "worst first"."""
    return LEVELS.index(state)


def machine_health(conn: psycopg.Connection, machine_id: UUID, now: datetime,
                   no_data_s: float) -> dict[str, Any]:
    model = q.active_detector(conn, machine_id)
    latest = q.latest(conn, machine_id)
    windows = anomalous = 0
    if latest is not None:
        since = latest["t"] - timedelta(seconds=RECENT_S)
        windows, anomalous = q.recent_counts(conn, machine_id, since, latest["t"])
    open_alerts = alert_queries.list_alerts(
        conn, {"machine_id": machine_id, "state": "firing", "type": None,
               "acknowledged": None, "start": None, "end": None}, 10, 0)
    inputs = HealthInputs(trained=model is not None,
                          latest_t=latest["t"] if latest else None, recent_windows=windows,
                          recent_anomalous=anomalous,
                          firing_anomaly=sum(a["type"] == "anomaly" for a in open_alerts))
    state = level(inputs, now, no_data_s)
    return {"machine_id": machine_id, "state": state, "reason": REASONS[state],
            "checked_at": now, "latest": latest,
            "recent": {"seconds": RECENT_S, "windows": windows, "anomalous": anomalous},
            "model": model,
            "open_alerts": [{"id": a["id"], "type": a["type"], "starts_at": a["starts_at"],
                             "acknowledged": a["acknowledged_at"] is not None}
                            for a in open_alerts]}
