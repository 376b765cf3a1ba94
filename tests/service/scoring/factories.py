"""Machines, sensors and score rows for the scoring tests, written straight to the real
database (scores through the same binary COPY encoder the scorer uses)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import numpy as np
import psycopg

from service import security
from service.scoring import copy

MARK_DIRTY = """
INSERT INTO rollup_dirty (machine_id, bucket)
SELECT DISTINCT machine_id, time_bucket('1 minute', t) FROM scores
WHERE machine_id = %s AND t >= %s AND t <= %s
ON CONFLICT DO NOTHING
"""


def make_machine(conn: psycopg.Connection, sensors: int = 1, kind: str = "logmel-v1",
                 dim: int = 128) -> tuple[UUID, list[UUID]]:
    name = f"machine-{uuid.uuid4().hex[:8]}"
    row = conn.execute("INSERT INTO machines (name, kind) VALUES (%s, 'bldc') RETURNING id",
                       (name,)).fetchone()
    assert row is not None
    sensor_ids = []
    for i in range(sensors):
        token_hash = security.digest(security.new_token(security.INGEST_TOKEN_PREFIX))
        found = conn.execute(
            "INSERT INTO sensors (machine_id, name, embedding_kind, dim, token_hash) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (row[0], f"mic-{i}", kind, dim, token_hash)).fetchone()
        assert found is not None
        sensor_ids.append(found[0])
    conn.commit()
    return row[0], sensor_ids


def copy_scores(conn: psycopg.Connection, machine_id: UUID, sensor_id: UUID,
                times: list[datetime], scores: np.ndarray, threshold: float,
                version: int = 1) -> None:
    """Store score rows and mark their minutes dirty, as a scorer iteration would."""
    block = copy.score_rows(machine_id, [sensor_id] * len(times), times, version,
                            scores.astype(np.float32), threshold, scores > threshold)
    with conn.cursor() as cur, cur.copy(
            "COPY scores (machine_id, sensor_id, t, model_version, score, threshold, "
            "anomalous) FROM STDIN WITH (FORMAT binary)") as stream:
        stream.write(copy.payload([block]))
    conn.execute(MARK_DIRTY, (machine_id, min(times), max(times)))
    conn.commit()


def series(start: datetime, every_s: float, count: int) -> list[datetime]:
    return [start + timedelta(seconds=every_s * i) for i in range(count)]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
