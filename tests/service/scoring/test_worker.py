"""The scoring worker on the real database with a detector trained on real BLDC motor
recordings: every window scored exactly once (across a restart, with two workers at
once), woken by NOTIFY, and fault recordings flagged far more often than healthy ones."""

from __future__ import annotations

import logging
import statistics
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

import numpy as np
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from service.queries.scores import LISTEN_INGEST
from service.scoring.scorer import Scorer
from service.settings import Settings
from service.training import models as training_models
from tests.live import wait_until
from tests.service.scoring.conftest import WorkerThread
from tests.service.scoring.factories import activate_model, bldc, ingest, make_machine

WAIT_S = 60.0
COUNT_SCORES = "SELECT count(*), count(DISTINCT (sensor_id, t, model_version)) FROM scores " \
               "WHERE machine_id = ANY(%s)"


def _counts(conn: psycopg.Connection, machine_ids: list[UUID]) -> tuple[int, int]:
    conn.commit()  # a fresh snapshot for every poll
    row = conn.execute(COUNT_SCORES, (machine_ids,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _wait_for_scores(conn: psycopg.Connection, machine_ids: list[UUID], expected: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if _counts(conn, machine_ids)[0] >= expected:
            return
        time.sleep(0.05)
    pytest.fail(f"only {_counts(conn, machine_ids)[0]} of {expected} windows scored")


def _queue_length(conn: psycopg.Connection) -> int:
    conn.commit()
    row = conn.execute("SELECT count(*) FROM ingest_batches").fetchone()
    return int(row[0]) if row else -1


def _drain(conn: psycopg.Connection, scorer: Scorer) -> int:
    """Scorer iterations until the queue is empty; returns how many did work."""
    for steps in range(100):
        if scorer.step(conn).claimed == 0:
            return steps
    pytest.fail("the queue did not drain in 100 iterations")


@pytest.fixture(autouse=True)
def _fresh_model_cache() -> None:
    training_models.clear_cache()  # versions restart at 1 in every test database


def test_every_window_scored_once_across_a_worker_restart(
        conn: psycopg.Connection, settings: Settings, pool: ConnectionPool,
        workers: list[WorkerThread]) -> None:
    machine_id, (sensor,) = make_machine(conn)
    version = activate_model(conn, machine_id)
    vectors = np.concatenate([bldc("healthy", "test"), bldc("propeller")])
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    half = len(vectors) // 2
    workers.append(WorkerThread(settings, pool))
    ingest(conn, sensor, start, vectors[:half], per_batch=7)
    workers[0].close()  # stopped mid-stream: batches may still be queued
    ingest(conn, sensor, start + timedelta(seconds=half), vectors[half:], per_batch=7)
    scored_while_down = _counts(conn, [machine_id])[0]
    assert scored_while_down < len(vectors)
    # A retried batch that overlaps already scored windows must not score them twice.
    ingest(conn, sensor, start + timedelta(seconds=len(vectors) - 5),
           np.concatenate([vectors[-5:], vectors[:3] + 1.0]), per_batch=8)
    workers.append(WorkerThread(settings, pool))
    _wait_for_scores(conn, [machine_id], len(vectors) + 3)
    workers[1].close()
    assert _counts(conn, [machine_id]) == (len(vectors) + 3, len(vectors) + 3)
    assert _queue_length(conn) == 0
    rows = conn.execute("SELECT DISTINCT model_version, threshold FROM scores").fetchall()
    threshold = conn.execute("SELECT threshold::real FROM models WHERE active").fetchone()
    assert threshold is not None and rows == [(version, threshold[0])]


def test_two_workers_at_once_score_everything_once(
        conn: psycopg.Connection, settings: Settings, pool: ConnectionPool,
        workers: list[WorkerThread], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="earshot.scoring")
    small = settings.model_copy(update={"scoring_chunk_windows": 30, "scoring_claim_rows": 6})
    machines = [make_machine(conn, sensors=2) for _ in range(3)]
    for machine_id, _ in machines:
        activate_model(conn, machine_id)
    workers.extend([WorkerThread(small, pool), WorkerThread(small, pool)])
    vectors = bldc("healthy", "test")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    for _, sensors in machines:
        for sensor in sensors:
            ingest(conn, sensor, start, vectors, per_batch=4)
            # Overlapping retries: half old windows, half new.
            ingest(conn, sensor, start + timedelta(seconds=len(vectors) - 4), vectors[:8],
                   per_batch=8)
    expected = 3 * 2 * (len(vectors) + 4)
    machine_ids = [m for m, _ in machines]
    _wait_for_scores(conn, machine_ids, expected)
    for running in workers:
        running.close()
    assert _counts(conn, machine_ids) == (expected, expected)
    assert _queue_length(conn) == 0
    busy = {r.threadName for r in caplog.records if r.getMessage() == "scored"}
    assert len(busy) == 2, "both workers should have scored batches"


def _listening(conn: psycopg.Connection) -> bool:
    """The worker's LISTEN is registered: from here on no notification can be missed."""
    conn.commit()
    row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                       "current_database() AND query = %s", (LISTEN_INGEST,)).fetchone()
    return row is not None and row[0] > 0


def test_worker_wakes_on_notify(conn: psycopg.Connection, settings: Settings,
                                pool: ConnectionPool, workers: list[WorkerThread]) -> None:
    """Latency from the ingest commit to the committed score once the worker is up. The
    poll fallback is stretched to 30 s (past its validated 1 s cap, hence model_copy) so
    that a window scored within seconds can only have been woken by its NOTIFY."""
    machine_id, (sensor,) = make_machine(conn)
    activate_model(conn, machine_id)
    workers.append(WorkerThread(settings.model_copy(update={"scoring_poll_s": 30.0}), pool))
    vectors = bldc("healthy", "test")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    latencies = []
    try:
        # Start-up is not the latency under test: wait for the LISTEN, then score one
        # window (which loads the detector) before measuring.
        wait_until(lambda: _listening(conn), WAIT_S, "the worker's LISTEN")
        ingest(conn, sensor, start - timedelta(seconds=1), vectors[:1])
        _wait_for_scores(conn, [machine_id], 1)
        for i in range(10):
            committed = time.perf_counter()
            ingest(conn, sensor, start + timedelta(seconds=i), vectors[i:i + 1])
            _wait_for_scores(conn, [machine_id], i + 2)
            latencies.append(time.perf_counter() - committed)
            time.sleep(0.05)
    finally:
        # The stretched poll would also keep the idle worker from seeing `stop` for 30 s.
        workers[0].stop.set()
        conn.execute(f"NOTIFY {LISTEN_INGEST.split()[-1]}")
        conn.commit()
        workers[0].close()
    print(f"\ningest commit -> score: p50 {statistics.median(latencies) * 1e3:.0f} ms, "
          f"max {max(latencies) * 1e3:.0f} ms")
    assert max(latencies) < 10.0  # every window woken by NOTIFY, none by the 30 s poll
    assert statistics.median(latencies) < 0.5  # well under the default 1 s poll fallback


def test_fault_recordings_flagged_far_more_often_than_held_out_healthy(
        conn: psycopg.Connection) -> None:
    machine_id, (sensor,) = make_machine(conn)
    activate_model(conn, machine_id)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    healthy, fault = bldc("healthy", "test"), bldc("propeller")
    ingest(conn, sensor, start, healthy, per_batch=50)
    fault_start = start + timedelta(hours=1)
    ingest(conn, sensor, fault_start, fault, per_batch=50)
    _drain(conn, Scorer())
    conn.commit()
    rates = conn.execute(
        "SELECT t >= %s, avg(anomalous::int), count(*) FROM scores GROUP BY 1 ORDER BY 1",
        (fault_start,)).fetchall()
    (_, healthy_rate, n_healthy), (_, fault_rate, n_fault) = rates
    print(f"\nanomalous: held-out healthy {healthy_rate:.1%} of {n_healthy}, "
          f"propeller fault {fault_rate:.1%} of {n_fault}")
    assert (n_healthy, n_fault) == (len(healthy), len(fault))
    assert fault_rate > 0.6 and fault_rate > 3 * healthy_rate


def test_first_activation_backfill_is_scored_in_chunks(conn: psycopg.Connection) -> None:
    machine_id, sensors = make_machine(conn, sensors=2)
    real = np.concatenate([bldc("healthy", "test"), bldc("propeller")])
    vectors = np.resize(real, (6000, real.shape[1]))  # real windows, repeated in time
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    for sensor in sensors:
        ingest(conn, sensor, start, vectors, per_batch=1000)
    scorer = Scorer(chunk_windows=5000)
    _drain(conn, scorer)  # no model yet: the queue is emptied, nothing is scored
    assert _counts(conn, [machine_id])[0] == 0
    activate_model(conn, machine_id, backfill_s=3 * 3600)
    assert _queue_length(conn) == 2  # one backfill row per sensor
    started = time.perf_counter()
    steps = _drain(conn, scorer)
    elapsed = time.perf_counter() - started
    assert _counts(conn, [machine_id]) == (12_000, 12_000)
    assert steps == 3  # 5,000 + 5,000 + 2,000 windows, one commit each
    print(f"\nbackfill: 12,000 windows in {elapsed:.2f} s = {12_000 / elapsed:,.0f} windows/s")


def test_unscorable_batches_leave_the_queue(conn: psycopg.Connection,
                                            caplog: pytest.LogCaptureFixture) -> None:
    """Wrong embedding or a tampered artifact: nothing scored, nothing stuck, and other
    machines are still scored."""
    good, (good_sensor,) = make_machine(conn)
    tampered, (tampered_sensor,) = make_machine(conn)
    vendor, (vendor_sensor,) = make_machine(conn, kind="vendor-x", dim=128)
    for machine_id in (good, tampered, vendor):
        activate_model(conn, machine_id)
    conn.execute("UPDATE models SET artifact = artifact || '\\x00'::bytea WHERE machine_id = %s",
                 (tampered,))
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    vectors = bldc("healthy", "test")[:20]
    for sensor in (good_sensor, tampered_sensor, vendor_sensor):
        ingest(conn, sensor, start, vectors)
    _drain(conn, Scorer())
    assert _counts(conn, [good]) == (20, 20)
    assert _counts(conn, [tampered, vendor]) == (0, 0)
    assert _queue_length(conn) == 0
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "cannot load the active detector" in messages
    assert "does not match the active detector" in messages


@pytest.mark.slow
def test_worker_recovers_when_its_database_sessions_are_killed(
        conn: psycopg.Connection, settings: Settings, pool: ConnectionPool,
        workers: list[WorkerThread]) -> None:
    """Every server session but the test's own is terminated mid-stream (pool connections
    and the LISTEN connection): the worker reconnects and still scores every window once."""
    machine_id, (sensor,) = make_machine(conn)
    activate_model(conn, machine_id)
    vectors = np.concatenate([bldc("healthy", "test"), bldc("propeller")])
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    workers.append(WorkerThread(settings, pool))
    ingest(conn, sensor, start, vectors[:60], per_batch=6)
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    conn.commit()
    ingest(conn, sensor, start + timedelta(seconds=60), vectors[60:], per_batch=6)
    _wait_for_scores(conn, [machine_id], len(vectors))
    workers[0].close()
    assert _counts(conn, [machine_id]) == (len(vectors), len(vectors))
    assert _queue_length(conn) == 0
