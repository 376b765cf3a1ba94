"""Retention on the real database: old chunks of embeddings and scores are dropped, rollups
outlive them (until their own optional retention), old dead letters and dead queue rows go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from service.queries import retention as retention_queries
from service.queries import rollups as rollup_queries
from service.scoring import retention, rollups, timeline
from service.settings import Settings
from tests.service.scoring.factories import bldc, copy_scores, ingest, make_machine, series

COUNT_BEFORE = "SELECT count(*) FROM {table} WHERE {column} < %s"


def _count(conn: psycopg.Connection, table: str, column: str, before: datetime) -> int:
    conn.commit()
    row = conn.execute(COUNT_BEFORE.format(table=table, column=column), (before,)).fetchone()
    conn.commit()  # holds no lock that would make drop_chunks wait
    return int(row[0]) if row else -1


def _chunks(conn: psycopg.Connection, hypertable: str) -> int:
    row = conn.execute("SELECT count(*) FROM show_chunks(%s::regclass)", (hypertable,)).fetchone()
    conn.commit()
    return int(row[0]) if row else -1


def test_old_chunks_are_dropped_and_rollups_kept(conn: psycopg.Connection, settings: Settings,
                                                  pool: ConnectionPool) -> None:
    now = datetime.now(UTC)
    machine_id, (sensor,) = make_machine(conn)
    vectors = bldc("healthy", "test")[:30]
    ingest(conn, sensor, now - timedelta(days=40), vectors)
    ingest(conn, sensor, now - timedelta(hours=2), vectors)
    old_day = (now - timedelta(days=100)).replace(hour=3, minute=0, second=0, microsecond=0)
    copy_scores(conn, machine_id, sensor, series(old_day, 10, 360), np.full(360, 0.3), 0.2)
    copy_scores(conn, machine_id, sensor, series(now - timedelta(days=1), 10, 60),
                np.full(60, 0.1), 0.2)
    rollups.refresh(settings, pool)
    conn.execute("INSERT INTO ingest_errors (source, reason, received_at) VALUES "
                 "('mqtt', 'bad json', %s), ('mqtt', 'bad json', now())",
                 (now - timedelta(days=31),))
    conn.commit()
    chunks_before = _chunks(conn, "scores"), _chunks(conn, "embeddings")

    removed = retention.enforce(settings, pool)

    assert removed["scores_chunks"] >= 1 and removed["embeddings_chunks"] >= 1
    assert _chunks(conn, "scores") == chunks_before[0] - removed["scores_chunks"]
    assert _chunks(conn, "embeddings") == chunks_before[1] - removed["embeddings_chunks"]
    cutoff_scores = now - timedelta(days=settings.scores_retention_days)
    cutoff_embeddings = now - timedelta(days=settings.embeddings_retention_days)
    assert _count(conn, "scores", "t", cutoff_scores) == 0
    assert _count(conn, "scores", "t", now) == 60
    assert _count(conn, "embeddings", "t", cutoff_embeddings) == 0
    assert _count(conn, "embeddings", "t", now) == 30
    assert _count(conn, "ingest_errors", "received_at", now + timedelta(days=1)) == 1
    assert removed["ingest_errors"] == 1 and "rollups" not in removed
    # The old hour is still on the timeline, served from rollups.
    hour = rollup_queries.timeline(conn, "rollup-1h", machine_id, old_day,
                                   old_day + timedelta(hours=1), 3600, timeline.ORIGIN)
    assert [(row[1], row[4]) for row in hour] == [(360, 360)]


def test_rollups_have_their_own_optional_retention(conn: psycopg.Connection,
                                                   settings: Settings,
                                                   pool: ConnectionPool) -> None:
    now = datetime.now(UTC)
    machine_id, (sensor,) = make_machine(conn)
    old_hour = (now - timedelta(days=300)).replace(minute=0, second=0, microsecond=0)
    copy_scores(conn, machine_id, sensor, series(old_hour, 60, 10), np.ones(10), 0.5)
    copy_scores(conn, machine_id, sensor, series(now - timedelta(days=100), 60, 10),
                np.ones(10), 0.5)
    rollups.refresh(settings, pool)
    removed = retention.enforce(
        settings.model_copy(update={"rollups_retention_days": 200.0}), pool)
    assert removed["rollups"] == 10 + 1  # ten minute rollups and their hour
    assert _count(conn, "score_rollups", "bucket", now - timedelta(days=200)) == 0
    assert _count(conn, "score_rollups", "bucket", now) > 0


def test_retention_runs_once_at_a_time(conn: psycopg.Connection, settings: Settings,
                                       pool: ConnectionPool, database_url: str) -> None:
    machine_id, (sensor,) = make_machine(conn)
    old = datetime.now(UTC) - timedelta(days=120)
    copy_scores(conn, machine_id, sensor, series(old, 60, 5), np.ones(5), 0.5)
    with psycopg.connect(database_url) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (retention_queries.RETENTION_LOCK_KEY,))
        assert retention.enforce(settings, pool) == {}
        assert _count(conn, "scores", "t", datetime.now(UTC)) == 5
        other.execute("SELECT pg_advisory_unlock(%s)", (retention_queries.RETENTION_LOCK_KEY,))
    assert retention.enforce(settings, pool)["scores_chunks"] >= 1


@pytest.mark.slow
def test_a_reader_holding_an_old_chunk_makes_retention_give_up_not_stall(
        conn: psycopg.Connection, settings: Settings, pool: ConnectionPool,
        database_url: str) -> None:
    machine_id, (sensor,) = make_machine(conn)
    old = datetime.now(UTC) - timedelta(days=120)
    copy_scores(conn, machine_id, sensor, series(old, 60, 5), np.ones(5), 0.5)
    with psycopg.connect(database_url) as reader:
        reader.execute("SELECT count(*) FROM scores WHERE t < now() - interval '100 days'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            retention.enforce(settings, pool, lock_wait_s=0.2)
        assert _count(conn, "scores", "t", datetime.now(UTC)) == 5  # nothing half-done
        reader.commit()
    assert retention.enforce(settings, pool)["scores_chunks"] >= 1
    assert _count(conn, "scores", "t", datetime.now(UTC)) == 0
