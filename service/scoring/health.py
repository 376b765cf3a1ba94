"""A machine's health from its active detector and its newest scores.

States, first match wins: `untrained` (no active detector), `no_data` (no window scored in
the last `health_no_data_s`), `anomalous` (most windows of the last RECENT_S seconds of
data are above the threshold: a majority, so a single noisy window does not flip it; the
debounced view with hysteresis is the alert rule's job), otherwise `ok`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from service.queries import scores as q

RECENT_S = 60.0


def machine_health(conn: psycopg.Connection, machine_id: UUID, now: datetime,
                   no_data_s: float) -> dict[str, Any]:
    model = q.active_detector(conn, machine_id)
    latest = q.latest(conn, machine_id)
    windows = anomalous = 0
    if latest is not None:
        since = latest["t"] - timedelta(seconds=RECENT_S)
        windows, anomalous = q.recent_counts(conn, machine_id, since, latest["t"])
    if model is None:
        state = "untrained"
    elif latest is None or latest["t"] < now - timedelta(seconds=no_data_s):
        state = "no_data"
    elif 2 * anomalous > windows:
        state = "anomalous"
    else:
        state = "ok"
    return {"machine_id": machine_id, "state": state, "checked_at": now, "latest": latest,
            "recent": {"seconds": RECENT_S, "windows": windows, "anomalous": anomalous},
            "model": model}
