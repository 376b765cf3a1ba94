"""Versioned models (`models`) and their activation.

Versions are allocated as max+1 under a transaction-scoped advisory lock per
(machine, target), inside the transaction that inserts the model and finishes its job:
a run that dies before commit leaves no version behind, and two runs can never race to
the same number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ingest.store import INGEST_CHANNEL

# Everything but the artifact bytes, which are read only to load a model.
MODEL_COLUMNS = """
machine_id, target, version, algorithm, params, threshold, threshold_config,
embedding_kind, dim, train_start, train_end, n_windows, score_stats, metrics, fit_seconds,
library_versions, artifact_sha256, octet_length(artifact) AS artifact_bytes, job_id,
trained_at, active, activated_at
"""
LOCK_VERSIONS = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
INSERT_MODEL = """
INSERT INTO models (machine_id, target, version, algorithm, params, threshold,
                    threshold_config, embedding_kind, dim, train_start, train_end, n_windows,
                    score_stats, metrics, fit_seconds, library_versions, artifact,
                    artifact_sha256, job_id)
SELECT %(machine_id)s, %(target)s, coalesce(max(version), 0) + 1, %(algorithm)s,
       %(params)s, %(threshold)s, %(threshold_config)s, %(embedding_kind)s, %(dim)s,
       %(train_start)s, %(train_end)s, %(n_windows)s, %(score_stats)s, %(metrics)s,
       %(fit_seconds)s, %(library_versions)s, %(artifact)s, %(artifact_sha256)s, %(job_id)s
FROM models WHERE machine_id = %(machine_id)s AND target = %(target)s
RETURNING version
"""
LIST_MODELS = f"""
SELECT {MODEL_COLUMNS} FROM models WHERE machine_id = %s AND target = %s
ORDER BY version DESC LIMIT %s OFFSET %s
"""
SELECT_MODEL = f"""
SELECT {MODEL_COLUMNS} FROM models WHERE machine_id = %s AND target = %s AND version = %s
"""
SELECT_ACTIVE_META = """
SELECT version, artifact_sha256, algorithm, threshold, embedding_kind, dim FROM models
WHERE machine_id = %s AND target = %s AND active
"""
SELECT_ARTIFACT = """
SELECT artifact FROM models WHERE machine_id = %s AND target = %s AND version = %s
"""
EVER_ACTIVATED = """
SELECT EXISTS (SELECT 1 FROM models WHERE machine_id = %s AND target = %s
               AND activated_at IS NOT NULL)
"""
# Deactivate first: the partial unique index allows one active row per (machine, target).
DEACTIVATE_OTHERS = """
UPDATE models SET active = false
WHERE machine_id = %s AND target = %s AND active AND version <> %s
"""
ACTIVATE = """
UPDATE models SET active = true, activated_at = now()
WHERE machine_id = %s AND target = %s AND version = %s
"""
# One scoring batch per sensor over the backfill range; the scorer chunks large ranges.
QUEUE_BACKFILL = """
INSERT INTO ingest_batches (sensor_id, t_min, t_max, n)
SELECT e.sensor_id, min(e.t), max(e.t), count(*)
FROM sensors s JOIN embeddings e ON e.sensor_id = s.id
WHERE s.machine_id = %s AND e.t >= now() - make_interval(secs => %s) AND e.t <= now()
GROUP BY e.sensor_id
RETURNING sensor_id, n
"""
NOTIFY_INGEST = "SELECT pg_notify(%s, %s)"


@dataclass(frozen=True)
class ActiveMeta:
    version: int
    artifact_sha256: str
    algorithm: str
    threshold: float
    embedding_kind: str
    dim: int


def lock_versions(conn: psycopg.Connection, machine_id: UUID, target: str) -> None:
    conn.execute(LOCK_VERSIONS, (f"models:{machine_id}:{target}",))


def insert_model(conn: psycopg.Connection, row: dict[str, Any]) -> int:
    """Insert a model with the next version number (call `lock_versions` first)."""
    values = dict(row)
    for key in ("params", "threshold_config", "score_stats", "metrics", "library_versions"):
        values[key] = Jsonb(values[key])
    result = conn.execute(INSERT_MODEL, values).fetchone()
    assert result is not None
    return int(result[0])


def list_models(conn: psycopg.Connection, machine_id: UUID, target: str, limit: int,
                offset: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_MODELS, (machine_id, target, limit, offset)).fetchall()


def get_model(conn: psycopg.Connection, machine_id: UUID, target: str,
              version: int) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_MODEL, (machine_id, target, version)).fetchone()


def active_meta(conn: psycopg.Connection, machine_id: UUID, target: str) -> ActiveMeta | None:
    row = conn.execute(SELECT_ACTIVE_META, (machine_id, target)).fetchone()
    return ActiveMeta(*row) if row else None


def artifact(conn: psycopg.Connection, machine_id: UUID, target: str,
             version: int) -> bytes | None:
    row = conn.execute(SELECT_ARTIFACT, (machine_id, target, version)).fetchone()
    return bytes(row[0]) if row else None


def ever_activated(conn: psycopg.Connection, machine_id: UUID, target: str) -> bool:
    row = conn.execute(EVER_ACTIVATED, (machine_id, target)).fetchone()
    return bool(row and row[0])


def activate(conn: psycopg.Connection, machine_id: UUID, target: str, version: int) -> bool:
    conn.execute(DEACTIVATE_OTHERS, (machine_id, target, version))
    return conn.execute(ACTIVATE, (machine_id, target, version)).rowcount == 1


def queue_backfill(conn: psycopg.Connection, machine_id: UUID,
                   backfill_s: float) -> dict[UUID, int]:
    """Queue the machine's windows of the last `backfill_s` seconds for scoring; returns
    windows queued per sensor. The scorer is woken on commit."""
    rows = conn.execute(QUEUE_BACKFILL, (machine_id, backfill_s)).fetchall()
    for sensor_id, _ in rows:
        conn.execute(NOTIFY_INGEST, (INGEST_CHANNEL, str(sensor_id)))
    return {row[0]: int(row[1]) for row in rows}

