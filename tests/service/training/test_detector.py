"""Every registered algorithm trains from windows of real audio stored in the real
database, through the job runner, into a verified, loadable model version."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from detectors import ALGORITHMS, ArtifactError
from service.db import make_pool
from service.settings import Settings
from service.training import models, runner
from tests.service.training.helpers import (
    configure,
    make_machine,
    queue_manual_job,
    real_windows,
    recent,
    store_baseline,
    store_windows,
)

# The autoencoder's default 2,000 optimiser steps take 5-20 s on a busy 2-core box; a
# shorter run exercises the same code path (the default is benchmarked separately).
TEST_PARAMS: dict[str, dict[str, object]] = {"autoencoder": {"max_steps": 200}}


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    with make_pool(settings, max_size=4) as the_pool:
        yield the_pool


@pytest.fixture(autouse=True)
def _fresh_model_cache() -> None:
    models.clear_cache()


def model_row(conn: psycopg.Connection, machine_id: object, version: int) -> dict[str, Any]:
    cur = conn.execute(
        "SELECT version, algorithm, params, threshold, n_windows, score_stats, metrics, "
        "fit_seconds, artifact_sha256, encode(sha256(artifact), 'hex'), active, "
        "embedding_kind, dim, train_start, train_end, job_id FROM models "
        "WHERE machine_id = %s AND version = %s", (machine_id, version))
    names = [d.name for d in cur.description or []]
    row = cur.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def succeeded(outcome: runner.Outcome | None) -> bool:
    assert outcome is not None
    return outcome.state == "succeeded"


def scalar(conn: psycopg.Connection, sql: str, *args: object) -> Any:
    row = conn.execute(sql, args).fetchone()
    assert row is not None
    return row[0]


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_each_algorithm_trains_on_real_audio(algorithm: str, settings: Settings,
                                            conn: psycopg.Connection,
                                            pool: ConnectionPool) -> None:
    windows = real_windows()
    machine_id, (sensor_id,) = make_machine(conn)
    stored = store_baseline(conn, machine_id, sensor_id, windows, recent(3600))
    configure(conn, machine_id, algorithm, TEST_PARAMS.get(algorithm))
    job_id = queue_manual_job(conn, machine_id)

    started = time.perf_counter()
    outcome = runner.run_one(settings, pool)
    elapsed = time.perf_counter() - started

    assert outcome is not None and outcome.job_id == job_id
    assert outcome.state == "succeeded", outcome.error
    row = model_row(conn, machine_id, 1)
    print(f"\n{algorithm}: fit {row['fit_seconds']:.3f} s on {row['n_windows']} real "
          f"windows, job {elapsed:.3f} s")
    assert row["algorithm"] == algorithm and row["active"] is True
    assert row["n_windows"] == stored.n == len(windows)
    assert row["train_start"] == stored.start
    assert (row["train_end"] - stored.start).total_seconds() == stored.n - 1
    assert (row["embedding_kind"], row["dim"]) == ("logmel-v1", 128)
    assert row["job_id"] == job_id
    assert np.isfinite(row["threshold"])
    stats = row["score_stats"]
    assert isinstance(stats, dict) and {"train", "holdout"} <= set(stats)
    assert stats["holdout"]["p99"] >= stats["holdout"]["p50"]
    assert row["artifact_sha256"] == row["encode"]  # the stored digest is the blob's
    # Stored with every default filled in.
    assert set(row["params"]) == {s.name for s in ALGORITHMS[algorithm].algorithm_specs()}

    loaded = models.load_active(conn, machine_id)
    assert loaded is not None and loaded.version == 1 and loaded.algorithm == algorithm
    assert loaded.threshold == pytest.approx(row["threshold"])
    scores = loaded.detector.decision_function(windows)
    assert scores.shape == (len(windows),) and np.isfinite(scores).all()
    # Calibrated on held-out normal windows at q=0.99: most healthy windows are normal.
    assert (scores > loaded.threshold).mean() < 0.2


def test_load_active_refuses_a_tampered_artifact(settings: Settings, conn: psycopg.Connection,
                                                 pool: ConnectionPool) -> None:
    machine_id, (sensor_id,) = make_machine(conn)
    store_baseline(conn, machine_id, sensor_id, real_windows(), recent(3600))
    configure(conn, machine_id, "gmm")
    queue_manual_job(conn, machine_id)
    assert succeeded(runner.run_one(settings, pool))
    first = models.load_active(conn, machine_id)
    assert first is not None
    assert models.load_active(conn, machine_id) is first  # cached per version+digest

    # Flip one byte near the end of the pickle payload; the recorded digest stays.
    conn.execute("UPDATE models SET artifact = set_byte(artifact, length(artifact) - 10, "
                 "get_byte(artifact, length(artifact) - 10) # 1) WHERE machine_id = %s",
                 (machine_id,))
    conn.commit()
    models.clear_cache()
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        models.load_active(conn, machine_id)


def test_too_little_data_fails_with_the_reason(settings: Settings, conn: psycopg.Connection,
                                               pool: ConnectionPool) -> None:
    machine_id, (sensor_id,) = make_machine(conn)
    store_baseline(conn, machine_id, sensor_id, real_windows()[:20], recent(3600))
    configure(conn, machine_id, "iforest")
    job_id = queue_manual_job(conn, machine_id)

    outcome = runner.run_one(settings, pool)

    assert outcome is not None and outcome.state == "failed"
    row = conn.execute("SELECT state, error, model_version FROM jobs WHERE id = %s",
                       (job_id,)).fetchone()
    assert row is not None
    state, error, version = row
    assert (state, version) == ("failed", None)
    assert "got 20 training windows, need at least 50" in error
    assert "1 baseline range(s)" in error
    assert conn.execute("SELECT count(*) FROM models").fetchone() == (0,)


def test_no_baselines_fails_with_the_reason(settings: Settings, conn: psycopg.Connection,
                                            pool: ConnectionPool) -> None:
    machine_id, (sensor_id,) = make_machine(conn)
    store_windows(conn, sensor_id, real_windows(), recent(3600))  # stored, never declared
    configure(conn, machine_id, "iforest")
    job_id = queue_manual_job(conn, machine_id)

    assert not succeeded(runner.run_one(settings, pool))
    error = scalar(conn, "SELECT error FROM jobs WHERE id = %s", job_id)
    assert "got 0 training windows" in error and "/baselines" in error


def test_training_window_and_cap_limit_the_data(settings: Settings, conn: psycopg.Connection,
                                                pool: ConnectionPool) -> None:
    windows = real_windows()
    machine_id, (sensor_id,) = make_machine(conn)
    store_baseline(conn, machine_id, sensor_id, windows, recent(3 * 86400))  # old
    recent_part = store_baseline(conn, machine_id, sensor_id, windows, recent(3600))
    configure(conn, machine_id, "gmm", training_window_s=86400.0)
    queue_manual_job(conn, machine_id)
    assert succeeded(runner.run_one(settings, pool))
    row = model_row(conn, machine_id, 1)
    assert row["n_windows"] == recent_part.n and row["train_start"] == recent_part.start

    configure(conn, machine_id, "gmm")  # all time, but capped to the newest 100
    queue_manual_job(conn, machine_id)
    capped = settings.model_copy(update={"train_max_windows": 100})
    assert succeeded(runner.run_one(capped, pool))
    row = model_row(conn, machine_id, 2)
    assert row["n_windows"] == 100
    assert (row["train_end"] - row["train_start"]).total_seconds() == 99
    assert row["metrics"]["capped_at"] == 100


def test_sensors_of_another_embedding_are_left_out(settings: Settings,
                                                   conn: psycopg.Connection,
                                                   pool: ConnectionPool) -> None:
    windows = real_windows()
    machine_id, (sensor_id,) = make_machine(conn)
    other = scalar(conn, "INSERT INTO sensors (machine_id, name, embedding_kind, dim, "
                         "token_hash) VALUES (%s, 'vibration', 'custom-v1', 16, 'x'::bytea) "
                         "RETURNING id", machine_id)
    conn.commit()
    stored = store_baseline(conn, machine_id, sensor_id, windows, recent(3600))
    store_windows(conn, other, np.ones((len(windows), 16), np.float32), stored.start)
    configure(conn, machine_id, "ecod")
    queue_manual_job(conn, machine_id)

    assert succeeded(runner.run_one(settings, pool))
    row = model_row(conn, machine_id, 1)
    assert row["n_windows"] == stored.n
    excluded = row["metrics"]["excluded_sensors"]
    assert [e["id"] for e in excluded] == [str(other)]
    assert row["metrics"]["sensors"] == [str(sensor_id)]
    assert "custom-v1" in json.dumps(excluded)
