"""Fleet embedding runs and versions (`fleet_embeddings`): a queue of at most one open run,
claimed with FOR UPDATE SKIP LOCKED and owned through (id, attempts) like training jobs;
a run that succeeds gets the next version number in its finishing transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

COLUMNS = """id, version, state, trigger, slot, params, error, attempts, created_at,
started_at, trained_at, n_recordings, n_windows, aux_classes, dim, metrics, fit_seconds,
library_versions, artifact_sha256, onnx_sha256, heartbeat_at"""
# ON CONFLICT without a target: the one-open-run index and the one-run-per-day slot index.
INSERT_RUN = f"""
INSERT INTO fleet_embeddings (trigger, slot, params) VALUES (%s, %s, %s)
ON CONFLICT DO NOTHING RETURNING {COLUMNS}
"""
SELECT_OPEN = f"SELECT {COLUMNS} FROM fleet_embeddings WHERE state IN ('queued', 'running')"
LIST_RUNS = f"""
SELECT {COLUMNS} FROM fleet_embeddings ORDER BY created_at DESC, id LIMIT %s OFFSET %s
"""
SELECT_VERSION = f"SELECT {COLUMNS} FROM fleet_embeddings WHERE version = %s"
SELECT_RUN = f"SELECT {COLUMNS} FROM fleet_embeddings WHERE id = %s"
SELECT_ARTIFACT = """
SELECT artifact, artifact_sha256 FROM fleet_embeddings WHERE version = %s
  AND state = 'succeeded'
"""
SELECT_ARTIFACT_SHA = """
SELECT artifact_sha256 FROM fleet_embeddings WHERE version = %s AND state = 'succeeded'
"""
SELECT_ONNX = """
SELECT onnx, onnx_sha256 FROM fleet_embeddings WHERE version = %s AND state = 'succeeded'
"""
LATEST_VERSION = "SELECT max(version) FROM fleet_embeddings WHERE state = 'succeeded'"
CLAIM_RUN = """
UPDATE fleet_embeddings SET state = 'running', attempts = attempts + 1, heartbeat_at = now(),
                            started_at = now(), error = NULL
WHERE id = (SELECT id FROM fleet_embeddings
            WHERE state = 'queued'
               OR (state = 'running' AND heartbeat_at < now() - make_interval(secs => %s))
            ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, params, attempts
"""
HEARTBEAT = """
UPDATE fleet_embeddings SET heartbeat_at = now()
WHERE id = %s AND attempts = %s AND state = 'running'
"""
LOCK_OWNED = """
SELECT 1 FROM fleet_embeddings WHERE id = %s AND attempts = %s AND state = 'running'
FOR UPDATE
"""
# Serialises version allocation (one open run exists, but a stale claim could overlap).
LOCK_VERSIONS = "SELECT pg_advisory_xact_lock(hashtextextended('earshot.fleet-embedding', 0))"
SUCCEED = """
UPDATE fleet_embeddings SET state = 'succeeded', heartbeat_at = NULL, trained_at = now(),
    version = (SELECT coalesce(max(version), 0) + 1 FROM fleet_embeddings),
    n_recordings = %(n_recordings)s, n_windows = %(n_windows)s,
    aux_classes = %(aux_classes)s, dim = %(dim)s, metrics = %(metrics)s,
    fit_seconds = %(fit_seconds)s, library_versions = %(library_versions)s,
    artifact = %(artifact)s, artifact_sha256 = %(artifact_sha256)s,
    onnx = %(onnx)s, onnx_sha256 = %(onnx_sha256)s
WHERE id = %(id)s AND attempts = %(attempts)s AND state = 'running'
RETURNING version
"""
FAIL = """
UPDATE fleet_embeddings SET state = 'failed', error = %s, heartbeat_at = NULL
WHERE id = %s AND attempts = %s AND state = 'running'
"""
FAIL_EXHAUSTED = """
UPDATE fleet_embeddings SET state = 'failed', heartbeat_at = NULL,
    error = 'failed: the worker running it died on every one of its attempts'
WHERE state = 'running' AND attempts >= %s AND heartbeat_at < now() - make_interval(secs => %s)
"""
# Every sensor holding audio, live or pinned, with its machine.
AUDIO_SENSORS = """
SELECT s.id, s.machine_id FROM sensors s
WHERE EXISTS (SELECT 1 FROM audio_chunks a WHERE a.sensor_id = s.id)
   OR EXISTS (SELECT 1 FROM audio_pinned p WHERE p.sensor_id = s.id)
ORDER BY s.machine_id, s.id
"""
HOLDS_AUDIO = """
SELECT EXISTS (SELECT 1 FROM audio_chunks) OR EXISTS (SELECT 1 FROM audio_pinned)
"""
# Retention: failed runs, and versions that are neither the newest nor named by any
# sensor's or model's embedding kind, once older than the cutoff.
PRUNE = """
DELETE FROM fleet_embeddings f
WHERE created_at < now() - make_interval(secs => %(age_s)s)
  AND (state = 'failed'
       OR (state = 'succeeded'
           AND version < (SELECT max(version) FROM fleet_embeddings WHERE state = 'succeeded')
           AND NOT EXISTS (SELECT 1 FROM sensors s
                           WHERE s.embedding_kind = 'fleet-v' || f.version)
           AND NOT EXISTS (SELECT 1 FROM models m
                           WHERE m.embedding_kind = 'fleet-v' || f.version)))
RETURNING id
"""
NEWEST_TRAINED = "SELECT max(trained_at) FROM fleet_embeddings WHERE state = 'succeeded'"


@dataclass(frozen=True)
class ClaimedRun:
    id: UUID
    params: dict[str, Any]
    attempts: int


def insert(conn: psycopg.Connection, trigger: str, params: dict[str, Any],
           slot: date | None = None) -> dict[str, Any] | None:
    """The queued run, or None when one is already open (or the day's slot is taken)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(INSERT_RUN, (trigger, slot, Jsonb(params))).fetchone()


def open_run(conn: psycopg.Connection) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_OPEN).fetchone()


def list_runs(conn: psycopg.Connection, limit: int, offset: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_RUNS, (limit, offset)).fetchall()


def get_version(conn: psycopg.Connection, version: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_VERSION, (version,)).fetchone()


def get_run(conn: psycopg.Connection, run_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_RUN, (run_id,)).fetchone()


def artifact(conn: psycopg.Connection, version: int) -> tuple[bytes, str] | None:
    row = conn.execute(SELECT_ARTIFACT, (version,)).fetchone()
    return (bytes(row[0]), row[1]) if row else None


def artifact_sha256(conn: psycopg.Connection, version: int) -> str | None:
    row = conn.execute(SELECT_ARTIFACT_SHA, (version,)).fetchone()
    return row[0] if row else None


def onnx(conn: psycopg.Connection, version: int) -> tuple[bytes, str] | None:
    row = conn.execute(SELECT_ONNX, (version,)).fetchone()
    return (bytes(row[0]), row[1]) if row else None


def latest_version(conn: psycopg.Connection) -> int | None:
    row = conn.execute(LATEST_VERSION).fetchone()
    return row[0] if row else None


def claim(conn: psycopg.Connection, stale_s: float) -> ClaimedRun | None:
    row = conn.execute(CLAIM_RUN, (stale_s,)).fetchone()
    return ClaimedRun(*row) if row else None


def heartbeat(conn: psycopg.Connection, run: ClaimedRun) -> bool:
    return conn.execute(HEARTBEAT, (run.id, run.attempts)).rowcount == 1


def succeed(conn: psycopg.Connection, run: ClaimedRun, model: dict[str, Any]) -> int | None:
    """Store the model and allocate its version; None when the claim is no longer ours."""
    if conn.execute(LOCK_OWNED, (run.id, run.attempts)).fetchone() is None:
        return None
    conn.execute(LOCK_VERSIONS)
    values = {**model, "id": run.id, "attempts": run.attempts}
    for key in ("aux_classes", "metrics", "library_versions"):
        values[key] = Jsonb(values[key])
    row = conn.execute(SUCCEED, values).fetchone()
    return row[0] if row else None


def fail(conn: psycopg.Connection, run: ClaimedRun, error: str) -> bool:
    return conn.execute(FAIL, (error, run.id, run.attempts)).rowcount == 1


def fail_exhausted(conn: psycopg.Connection, max_attempts: int, stale_s: float) -> int:
    return conn.execute(FAIL_EXHAUSTED, (max_attempts, stale_s)).rowcount


def audio_sensors(conn: psycopg.Connection) -> list[tuple[UUID, UUID]]:
    """(sensor id, machine id) of every sensor holding stored audio."""
    return [(r[0], r[1]) for r in conn.execute(AUDIO_SENSORS)]


def holds_audio(conn: psycopg.Connection) -> bool:
    row = conn.execute(HOLDS_AUDIO).fetchone()
    return bool(row and row[0])


def newest_trained(conn: psycopg.Connection) -> datetime | None:
    row = conn.execute(NEWEST_TRAINED).fetchone()
    return row[0] if row else None


def prune(conn: psycopg.Connection, age_s: float) -> int:
    """Delete failed runs and unused old versions older than `age_s`; how many."""
    return len(conn.execute(PRUNE, {"age_s": age_s}).fetchall())
