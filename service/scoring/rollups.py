"""Periodic rollup maintenance (scheduler job, every ~10 s): recompute the minute rollups
of the minutes the scorer marked dirty from raw scores, then the hour rollups of their
hours from minute rollups, and clear the dirty marks, in one transaction per slice.

An advisory lock keeps two scheduler processes from refreshing at the same time; the one
that does not get it skips the run (the other covers it).
"""

from __future__ import annotations

import logging
import time

from psycopg_pool import ConnectionPool

from service.queries import rollups as q
from service.settings import Settings

log = logging.getLogger("earshot.rollups")
# Dirty minutes per transaction, and transactions per run: bounds one run's time and
# locks; a backlog larger than that is finished by the next runs.
SLICE_MINUTES = 20_000
MAX_SLICES = 50


def refresh(settings: Settings, pool: ConnectionPool) -> int:
    """Bring the rollups up to date; returns the number of dirty minutes processed."""
    total = 0
    started = time.perf_counter()
    for _ in range(MAX_SLICES):
        with pool.connection() as conn, conn.transaction():
            if not q.try_lock(conn, q.ROLLUP_LOCK_KEY):
                break
            dirty = q.claim_dirty(conn, SLICE_MINUTES)
            if dirty:
                q.refresh_minutes(conn, dirty)
                q.refresh_hours(conn, dirty)
        total += len(dirty)
        if len(dirty) < SLICE_MINUTES:
            break
    if total:
        log.info("rollups refreshed", extra={"minutes": total,
                                             "seconds": round(time.perf_counter() - started, 3)})
    return total
