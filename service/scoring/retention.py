"""Retention (scheduler job, hourly): raw embeddings, scores/predictions and live audio are
dropped a chunk at a time after their retention periods (pinned audio keeps a copy);
rollups outlive raw scores (kept forever unless `rollups_retention_days` is set), so long
timelines stay available. The tables that grow with traffic (finished webhook messages
with their deliveries and attempts, finished training jobs, dead letters, queue rows whose
windows are gone, and resolved alerts if `alerts_retention_days` is set) are pruned after
their own retention periods, the row tables in batches (see `prune_rows`).

An advisory lock keeps two scheduler processes from running it at the same time, and a
lock timeout keeps a long-running reader of an old chunk from stalling ingest behind it
(the run fails, nothing is half-done, and the next run retries).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg_pool import ConnectionPool

from service.queries import audio
from service.queries import retention as q
from service.queries.rollups import try_lock
from service.settings import Settings

log = logging.getLogger("earshot.retention")
LOCK_WAIT_S = 10.0


def enforce(settings: Settings, pool: ConnectionPool, now: datetime | None = None,
            lock_wait_s: float = LOCK_WAIT_S) -> dict[str, int]:
    """Apply every retention setting; returns what was removed (chunks or rows)."""
    now = now or datetime.now(UTC)
    embeddings_cutoff = now - timedelta(days=settings.embeddings_retention_days)
    scores_cutoff = now - timedelta(days=settings.scores_retention_days)
    removed: dict[str, int] = {}
    with pool.connection() as conn, conn.transaction():
        if not try_lock(conn, q.RETENTION_LOCK_KEY):
            return removed
        q.limit_lock_wait(conn, lock_wait_s)
        removed["embeddings_chunks"] = q.drop_chunks(conn, "embeddings", embeddings_cutoff)
        removed["scores_chunks"] = q.drop_chunks(conn, "scores", scores_cutoff)
        removed["predictions_chunks"] = q.drop_chunks(conn, "predictions", scores_cutoff)
        removed["ingest_batches"] = q.delete_expired_batches(conn, embeddings_cutoff)
        if settings.rollups_retention_days is not None:
            removed["rollups"] = q.delete_rollups(
                conn, now - timedelta(days=settings.rollups_retention_days))
        removed.update(_audio(settings, conn, now))
    removed.update(prune_rows(settings, pool, now))
    if any(removed.values()):
        log.info("retention enforced", extra=removed)
    return removed

def _audio(settings: Settings, conn: psycopg.Connection, now: datetime) -> dict[str, int]:
    """Live audio is dropped by arrival time; what pins it is copied aside first, in the
    same transaction, so pinned audio never has a moment without a copy."""
    cutoff = now - timedelta(hours=settings.audio_retention_hours)
    margin = settings.audio_pin_margin_s
    return {"audio_pinned": audio.pin_expiring(conn, cutoff, margin),
            "audio_chunks": q.drop_chunks(conn, "audio_chunks", cutoff),
            "audio_released": audio.release_unpinned(conn, margin)}


def row_cutoffs(settings: Settings, now: datetime) -> dict[str, datetime]:
    """Per batched table, the time before which its finished rows are deleted."""
    cutoffs = {
        "webhook_messages": now - timedelta(days=settings.webhook_retention_days),
        "jobs": now - timedelta(days=settings.jobs_retention_days),
        "ingest_errors": now - timedelta(days=settings.ingest_errors_retention_days),
    }
    if settings.alerts_retention_days is not None:
        cutoffs["alerts"] = now - timedelta(days=settings.alerts_retention_days)
    return cutoffs


def prune_rows(settings: Settings, pool: ConnectionPool, now: datetime) -> dict[str, int]:
    """Delete expired rows table by table, one short transaction per batch, until a batch
    comes back short or `retention_max_batches` ran (the rest waits for the next run, so
    one run stays bounded). Stops early when another process holds the retention lock."""
    removed: dict[str, int] = {}
    limit = settings.retention_batch_rows
    for table, cutoff in row_cutoffs(settings, now).items():
        removed[table] = 0
        for _ in range(settings.retention_max_batches):
            with pool.connection() as conn, conn.transaction():
                if not try_lock(conn, q.RETENTION_LOCK_KEY):
                    return removed
                deleted = q.delete_batch(conn, table, cutoff, limit)
            removed[table] += deleted
            if deleted < limit:
                break
    return removed
