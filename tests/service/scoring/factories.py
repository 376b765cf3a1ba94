"""Machines, sensors, real-audio embeddings, real trained detectors and score rows for the
scoring tests, written straight to the real database (scores through the same binary COPY
encoder the scorer uses; models through the training package's own functions)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from uuid import UUID

import numpy as np
import psycopg
import soundfile as sf

from detectors import artifact, registry
from ingest.features import embed
from ingest.store import insert_windows
from service import security
from service.queries import models as model_queries
from service.scoring import copy
from service.training import models as training_models
from tests.conftest import DATA_DIR

BLDC_RPMS = {"train": (1400, 1550, 1750, 1950), "test": (1450, 1650, 1850, 2000)}

MARK_DIRTY = """
INSERT INTO rollup_dirty (machine_id, bucket)
SELECT DISTINCT %s::uuid, time_bucket('1 minute', t) FROM unnest(%s::timestamptz[]) AS u(t)
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
    conn.execute(MARK_DIRTY, (machine_id, times))
    conn.commit()


def series(start: datetime, every_s: float, count: int) -> list[datetime]:
    return [start + timedelta(seconds=every_s * i) for i in range(count)]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@cache
def bldc(condition: str, split: str | None = None) -> np.ndarray:
    """logmel-v1 windows of the BLDC recordings of motors M1 and M2: `healthy` train or
    test rpm (the manifest's split), or every `propeller` (fault) recording."""
    if condition == "healthy":
        assert split is not None
        names = [f"bldc_motor__healthy_{m}_{rpm}rpm.wav" for m in ("M1", "M2")
                 for rpm in BLDC_RPMS[split]]
    else:
        names = sorted(p.name for p in (DATA_DIR / "bldc").glob("bldc_motor__propeller_*.wav"))
    parts = []
    for name in names:
        samples, sr = sf.read(DATA_DIR / "bldc" / name, dtype="float32", always_2d=True)
        parts.append(embed(samples, sr))
    return np.concatenate(parts)


@cache
def trained_blob(algorithm: str = "iforest") -> tuple[bytes, str, float]:
    """A detector fitted on the healthy training recordings: (artifact, sha256, threshold)."""
    detector = registry.build(algorithm, {}, None).fit(bldc("healthy", "train"))
    blob, digest = artifact.dump(detector, {"embedding_kind": "logmel-v1", "dim": 128})
    return blob, digest, float(detector.threshold_)


def activate_model(conn: psycopg.Connection, machine_id: UUID, backfill_s: float = 0.0,
                   algorithm: str = "iforest") -> int:
    """Store the trained detector as the machine's next model version and activate it
    (a first activation with `backfill_s` > 0 queues recent windows for scoring)."""
    blob, digest, threshold = trained_blob(algorithm)
    conn.commit()  # so the block below is a real transaction, not a savepoint
    with conn.transaction():
        model_queries.lock_versions(conn, machine_id, "detector")
        version = model_queries.insert_model(conn, {
            "machine_id": machine_id, "target": "detector", "algorithm": algorithm,
            "params": {}, "threshold": threshold, "threshold_config": {},
            "embedding_kind": "logmel-v1", "dim": 128, "train_start": None, "train_end": None,
            "n_windows": len(bldc("healthy", "train")), "score_stats": {}, "metrics": {},
            "fit_seconds": 0.0, "library_versions": artifact.library_versions(),
            "artifact": blob, "artifact_sha256": digest, "job_id": None})
        assert training_models.activate(conn, machine_id, "detector", version, backfill_s)
    conn.commit()
    return version


def ingest(conn: psycopg.Connection, sensor_id: UUID, start: datetime,
           vectors: np.ndarray, per_batch: int = 10) -> list[datetime]:
    """Ingest windows 1 s apart in committed batches, as the ingest routes do."""
    t0 = (start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    times = t0 + np.arange(len(vectors), dtype=np.int64) * 1_000_000
    conn.commit()
    for i in range(0, len(vectors), per_batch):
        with conn.transaction():
            insert_windows(conn, sensor_id, times[i:i + per_batch], vectors[i:i + per_batch])
    conn.commit()
    return [start + timedelta(seconds=i) for i in range(len(vectors))]
