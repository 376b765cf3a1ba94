"""Real training data for the training, model and scheduler tests: logmel-v1 windows of
the BLDC motor M1 healthy train-split recordings in DATA_DIR, stored through
`ingest.store.insert_windows` at known times and declared as a baseline."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from uuid import UUID

import numpy as np
import psycopg
import soundfile as sf

from ingest.features import embed
from ingest.store import insert_windows
from service.queries.baselines import insert_baseline
from tests.conftest import DATA_DIR
from tests.service.scoring.factories import make_machine as make_machine  # shared factory

# Each file is embedded from 4 start offsets (0, 0.25, 0.5, 0.75 s): ~10 s clips give
# ~40 distinct 1 s windows per offset set, more than the 50 the detectors need for one
# fit/holdout split.
OFFSETS_S = (0.0, 0.25, 0.5, 0.75)


def manifest_paths(prefix: str, split: str) -> list[str]:
    with (DATA_DIR / "manifest.csv").open(newline="") as f:
        return [row["path"] for row in csv.DictReader(f)
                if row["path"].startswith(prefix) and row["split"] == split]


@lru_cache(maxsize=4)
def real_windows(prefix: str = "bldc/bldc_motor__healthy_M1", split: str = "train"
                 ) -> np.ndarray:
    """logmel-v1 windows (float32, n x 128) of the matching real recordings."""
    blocks = []
    for path in manifest_paths(prefix, split):
        samples, sr = sf.read(DATA_DIR / path, always_2d=True)
        for offset in OFFSETS_S:
            blocks.append(embed(samples[int(offset * sr):], sr))
    windows = np.concatenate(blocks).astype(np.float32)
    windows.setflags(write=False)
    return windows


@dataclass(frozen=True)
class Stored:
    start: datetime
    end: datetime  # exclusive
    n: int


def store_windows(conn: psycopg.Connection, sensor_id: UUID, windows: np.ndarray,
                  start: datetime) -> Stored:
    """Windows at start, start+1 s, ... (committed)."""
    start_us = int((start - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    times_us = start_us + np.arange(len(windows), dtype=np.int64) * 1_000_000
    result = insert_windows(conn, sensor_id, times_us, np.ascontiguousarray(windows))
    conn.commit()
    assert result.accepted == len(windows)
    return Stored(start, start + timedelta(seconds=len(windows)), len(windows))


def store_baseline(conn: psycopg.Connection, machine_id: UUID, sensor_id: UUID,
                   windows: np.ndarray, start: datetime) -> Stored:
    """Store windows and declare their range as normal operation."""
    stored = store_windows(conn, sensor_id, windows, start)
    insert_baseline(conn, machine_id, stored.start, stored.end, "healthy M1", "test")
    conn.commit()
    return stored


def recent(seconds_ago: float) -> datetime:
    """A whole second `seconds_ago` before now, so window times are exact."""
    return (datetime.now(UTC) - timedelta(seconds=seconds_ago)).replace(microsecond=0)


def configure(conn: psycopg.Connection, machine_id: UUID, algorithm: str = "iforest",
              params: dict[str, object] | None = None, **columns: object) -> None:
    """A detector config row written directly (the API path is tested separately)."""
    from psycopg.types.json import Jsonb

    values = {"retrain_cron": None, "training_window_s": None, "activation": "auto",
              "backfill_s": 86400.0, **columns}
    conn.execute(
        "INSERT INTO model_configs (machine_id, target, algorithm, params, threshold, "
        "retrain_cron, training_window_s, activation, backfill_s) "
        "VALUES (%s, 'detector', %s, %s, '{}', %s, %s, %s, %s) "
        "ON CONFLICT (machine_id, target) DO UPDATE SET algorithm = EXCLUDED.algorithm, "
        "params = EXCLUDED.params, retrain_cron = EXCLUDED.retrain_cron, "
        "training_window_s = EXCLUDED.training_window_s, activation = EXCLUDED.activation, "
        "backfill_s = EXCLUDED.backfill_s",
        (machine_id, algorithm, Jsonb(params or {}), values["retrain_cron"],
         values["training_window_s"], values["activation"], values["backfill_s"]))
    conn.commit()


def queue_manual_job(conn: psycopg.Connection, machine_id: UUID) -> UUID:
    row = conn.execute("INSERT INTO jobs (machine_id, target, trigger) "
                       "VALUES (%s, 'detector', 'manual') RETURNING id", (machine_id,)).fetchone()
    assert row is not None
    conn.commit()
    return row[0]
