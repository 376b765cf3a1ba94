"""Sensors: registry rows, ingest tokens, and the lookups and deletes of their data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

SELECT_SENSOR_BY_TOKEN = "SELECT id FROM sensors WHERE token_hash = %s"
SENSOR_COLUMNS = ("id, machine_id, name, embedding_kind, dim, window_s, sample_rate, "
                  "audio_policy, audio_codec, last_seen_at, created_at, updated_at")
INSERT_SENSOR = f"""
INSERT INTO sensors (machine_id, name, embedding_kind, dim, window_s, sample_rate, token_hash,
                     audio_policy, audio_codec)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (machine_id, name) DO NOTHING
RETURNING {SENSOR_COLUMNS}
"""
SELECT_SENSOR = f"SELECT {SENSOR_COLUMNS} FROM sensors WHERE id = %s"
LIST_MACHINE_SENSORS = f"""
SELECT {SENSOR_COLUMNS} FROM sensors WHERE machine_id = %s
ORDER BY name, id LIMIT %s OFFSET %s
"""
UPDATE_SENSOR = f"""
UPDATE sensors SET
    name = CASE WHEN %(set_name)s THEN %(name)s ELSE name END,
    window_s = CASE WHEN %(set_window_s)s THEN %(window_s)s::float8 ELSE window_s END,
    sample_rate = CASE WHEN %(set_sample_rate)s THEN %(sample_rate)s::int ELSE sample_rate END,
    audio_policy = CASE WHEN %(set_audio_policy)s THEN %(audio_policy)s ELSE audio_policy END,
    audio_codec = CASE WHEN %(set_audio_codec)s THEN %(audio_codec)s ELSE audio_codec END,
    updated_at = now()
WHERE id = %(id)s
RETURNING {SENSOR_COLUMNS}
"""
ROTATE_TOKEN = f"""
UPDATE sensors SET token_hash = %s, updated_at = now() WHERE id = %s
RETURNING {SENSOR_COLUMNS}
"""
SELECT_INGEST_TARGET = "SELECT id, machine_id, embedding_kind, dim FROM sensors WHERE id = %s"
# KEY SHARE: concurrent batches of one sensor do not wait for each other, but a delete of
# the sensor waits for the batch to commit (and then deletes its windows too).
LOCK_INGEST_TARGET = f"{SELECT_INGEST_TARGET} FOR KEY SHARE"
LOCK_SENSOR = "SELECT id FROM sensors WHERE id = %s FOR UPDATE"
SELECT_AUDIO_POLICY = "SELECT audio_policy, audio_codec FROM sensors WHERE id = %s"
COUNT_SENSOR_DATA = """
SELECT (SELECT count(*) FROM embeddings WHERE sensor_id = ANY(%(ids)s)) AS windows,
       (SELECT count(*) FROM scores WHERE sensor_id = ANY(%(ids)s)) AS scores,
       (SELECT count(*) FROM predictions WHERE sensor_id = ANY(%(ids)s)) AS predictions,
       (SELECT count(*) FROM audio_chunks WHERE sensor_id = ANY(%(ids)s))
     + (SELECT count(*) FROM audio_pinned WHERE sensor_id = ANY(%(ids)s)) AS audio_chunks
"""
DELETE_SENSOR_DATA = (
    "DELETE FROM embeddings WHERE sensor_id = ANY(%s)",
    # The machine's rollups still count these scores: mark their minutes for recompute.
    """INSERT INTO rollup_dirty (machine_id, bucket)
       SELECT DISTINCT machine_id, time_bucket('1 minute', t) FROM scores
       WHERE sensor_id = ANY(%s) ON CONFLICT DO NOTHING""",
    "DELETE FROM scores WHERE sensor_id = ANY(%s)",
    "DELETE FROM predictions WHERE sensor_id = ANY(%s)",
    "DELETE FROM ingest_batches WHERE sensor_id = ANY(%s)",
    "DELETE FROM ingest_errors WHERE sensor_id = ANY(%s)",
    "DELETE FROM audio_chunks WHERE sensor_id = ANY(%s)",
    "DELETE FROM audio_pinned WHERE sensor_id = ANY(%s)",
)
DELETE_SENSOR = "DELETE FROM sensors WHERE id = %s"
UPDATABLE = ("name", "window_s", "sample_rate", "audio_policy", "audio_codec")


@dataclass(frozen=True)
class AudioPolicy:
    """Whether the sensor's audio is kept, and how it is encoded."""

    keep: bool
    codec: str


@dataclass(frozen=True)
class IngestTarget:
    """What a write to a sensor needs to know about it."""

    id: UUID
    machine_id: UUID
    kind: str
    dim: int


def sensor_for_token(conn: psycopg.Connection, token_hash: bytes) -> UUID | None:
    row = conn.execute(SELECT_SENSOR_BY_TOKEN, (token_hash,)).fetchone()
    return row[0] if row else None


def insert(conn: psycopg.Connection, machine_id: UUID, name: str, kind: str, dim: int,
           window_s: float, sample_rate: int | None, token_hash: bytes,
           audio: AudioPolicy) -> dict[str, Any] | None:
    """The new sensor, or None when the machine already has a sensor of that name."""
    params = (machine_id, name, kind, dim, window_s, sample_rate, token_hash,
              "keep" if audio.keep else "off", audio.codec)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(INSERT_SENSOR, params).fetchone()


def get(conn: psycopg.Connection, sensor_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_SENSOR, (sensor_id,)).fetchone()


def list_for_machine(conn: psycopg.Connection, machine_id: UUID, limit: int,
                     offset: int) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_MACHINE_SENSORS, (machine_id, limit, offset)).fetchall()


def update(conn: psycopg.Connection, sensor_id: UUID,
           changes: Mapping[str, Any]) -> dict[str, Any] | None:
    """Set the fields in `changes` (keys from UPDATABLE); None when there is no such sensor.
    A name taken on the same machine raises psycopg.errors.UniqueViolation."""
    unknown = set(changes) - set(UPDATABLE)
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    params: dict[str, Any] = {"id": sensor_id}
    for field in UPDATABLE:
        params[f"set_{field}"] = field in changes
        params[field] = changes.get(field)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(UPDATE_SENSOR, params).fetchone()


def rotate_token(conn: psycopg.Connection, sensor_id: UUID,
                 token_hash: bytes) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(ROTATE_TOKEN, (token_hash, sensor_id)).fetchone()


def ingest_target(conn: psycopg.Connection, sensor_id: UUID, *,
                  lock: bool = False) -> IngestTarget | None:
    """The sensor's embedding; with `lock`, held against deletion until the transaction
    ends (take it in the transaction that writes the windows)."""
    row = conn.execute(LOCK_INGEST_TARGET if lock else SELECT_INGEST_TARGET,
                       (sensor_id,)).fetchone()
    return IngestTarget(row[0], row[1], row[2], int(row[3])) if row else None


def audio_policy(conn: psycopg.Connection, sensor_id: UUID) -> AudioPolicy | None:
    row = conn.execute(SELECT_AUDIO_POLICY, (sensor_id,)).fetchone()
    return AudioPolicy(keep=row[0] == "keep", codec=row[1]) if row else None


def lock_for_delete(conn: psycopg.Connection, sensor_id: UUID) -> bool:
    """Lock the sensor against concurrent ingest; False when there is no such sensor."""
    return conn.execute(LOCK_SENSOR, (sensor_id,)).fetchone() is not None


def count_data(conn: psycopg.Connection, sensor_ids: list[UUID]) -> dict[str, int]:
    """Stored windows, scores and predictions of these sensors (exact counts: slow on big
    hypertables, so only for the one-off delete confirmation)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(COUNT_SENSOR_DATA, {"ids": sensor_ids}).fetchone()
    assert row is not None
    return {key: int(value) for key, value in row.items()}


def delete_data(conn: psycopg.Connection, sensor_ids: list[UUID]) -> None:
    """Every row keyed by these sensors in tables without a foreign key to them."""
    for statement in DELETE_SENSOR_DATA:
        conn.execute(statement, (sensor_ids,))


def delete(conn: psycopg.Connection, sensor_id: UUID) -> None:
    conn.execute(DELETE_SENSOR, (sensor_id,))
