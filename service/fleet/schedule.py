"""The scheduled retrain of the fleet embedding (a periodic job of the leader worker):
once a day (`EARSHOT_FLEET_RETRAIN_HOURS`, 0: never) while the audio store holds audio,
a run is queued. The day is the run's `slot` (unique), and at most one run is open at a
time, so two leaders (a takeover, a partition) never queue two runs.

The same hourly job prunes: failed runs, and versions that are not the newest and that no
sensor or model names (`fleet-v<N>`), once older than `EARSHOT_JOBS_RETENTION_DAYS`
(each version holds ~4.5 MB: its weights and its ONNX export)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg_pool import ConnectionPool

from service.queries import fleet_embeddings as q
from service.settings import Settings

log = logging.getLogger("earshot.fleet")


def enqueue_due(settings: Settings, pool: ConnectionPool,
                now: datetime | None = None) -> dict[str, Any] | None:
    """The run queued now, or None (not due, no audio, or already queued)."""
    now = now or datetime.now(UTC)
    with pool.connection() as conn, conn.transaction():
        pruned = q.prune(conn, settings.jobs_retention_days * 86400)
    if pruned:
        log.info("fleet embedding: %d old run(s) or unused version(s) deleted", pruned)
    if settings.fleet_retrain_hours <= 0:
        return None
    with pool.connection() as conn, conn.transaction():
        newest = q.newest_trained(conn)
        if newest is not None and now - newest < timedelta(hours=settings.fleet_retrain_hours):
            return None
        if not q.holds_audio(conn):
            return None
        row = q.insert(conn, "schedule", {}, slot=now.date())
    if row is not None:
        log.info("fleet embedding run %s queued by the schedule", row["id"])
    return row
