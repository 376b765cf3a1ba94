"""The job runner's guarantees on the real database: one claim per job, stale jobs
re-queued (then failed), a finish that lost its claim stores nothing, concurrent runs
never share a version number."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from uuid import UUID

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from service.db import make_pool
from service.queries import jobs
from service.settings import Settings
from service.training import runner
from service.training.targets import trainer_for
from tests.service.training.helpers import (
    configure,
    make_machine,
    queue_manual_job,
    real_windows,
    recent,
    store_baseline,
)


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    with make_pool(settings, max_size=6) as the_pool:
        yield the_pool


@pytest.fixture
def machine_id(conn: psycopg.Connection) -> UUID:
    machine, (sensor_id,) = make_machine(conn)
    store_baseline(conn, machine, sensor_id, real_windows(), recent(3600))
    configure(conn, machine, "ecod")
    return machine


def job_row(conn: psycopg.Connection, job_id: UUID) -> tuple[str, int, str | None]:
    row = conn.execute("SELECT state, attempts, error FROM jobs WHERE id = %s",
                       (job_id,)).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


def age_heartbeat(conn: psycopg.Connection, job_id: UUID) -> None:
    conn.execute("UPDATE jobs SET heartbeat_at = now() - interval '1 hour' WHERE id = %s",
                 (job_id,))
    conn.commit()


def test_stale_jobs_are_requeued_then_failed(settings: Settings, pool: ConnectionPool,
                                             conn: psycopg.Connection,
                                             machine_id: UUID) -> None:
    job_id = queue_manual_job(conn, machine_id)
    settings = settings.model_copy(update={"train_max_attempts": 2})
    for attempt in (1, 2):
        claimed = runner.claim(pool)
        assert claimed is not None and claimed.id == job_id and claimed.attempts == attempt
        assert runner.claim(pool) is None  # running jobs are not claimed twice
        assert runner.recover_stale(settings, pool) == ([], [])  # heartbeat is fresh
        age_heartbeat(conn, job_id)  # the process "died"
        requeued, failed = runner.recover_stale(settings, pool)
        if attempt == 1:
            assert (requeued, failed) == ([job_id], [])
            assert job_row(conn, job_id) == ("queued", 1, runner.STALE_REQUEUED)
        else:
            assert (requeued, failed) == ([], [job_id])
            state, attempts, error = job_row(conn, job_id)
            assert (state, attempts) == ("failed", 2) and "died on every one" in (error or "")
    assert conn.execute("SELECT count(*) FROM models").fetchone() == (0,)


def test_a_finish_after_losing_the_claim_stores_nothing(settings: Settings,
                                                        pool: ConnectionPool,
                                                        conn: psycopg.Connection,
                                                        machine_id: UUID) -> None:
    queue_manual_job(conn, machine_id)
    slow = runner.claim(pool)
    assert slow is not None
    with pool.connection() as train_conn:
        model = trainer_for(slow.target)(settings, train_conn, slow)
    age_heartbeat(conn, slow.id)
    runner.recover_stale(settings, pool)  # slow looked dead: re-queued
    outcome = runner.run_one(settings, pool)  # and run to completion by another runner
    assert outcome is not None and (outcome.state, outcome.version) == ("succeeded", 1)

    late = runner.finish(settings, pool, slow, model)  # the first runner wakes up

    assert late.state == "lost"
    assert conn.execute("SELECT count(*), max(version) FROM models").fetchone() == (1, 1)
    assert job_row(conn, slow.id)[:2] == ("succeeded", 2)
    assert runner.fail(settings, pool, slow, "late failure").state == "lost"
    assert job_row(conn, slow.id)[0] == "succeeded"


def test_concurrent_runners_allocate_distinct_versions(settings: Settings,
                                                       pool: ConnectionPool,
                                                       conn: psycopg.Connection,
                                                       machine_id: UUID) -> None:
    job_ids = {queue_manual_job(conn, machine_id) for _ in range(4)}
    outcomes: list[runner.Outcome | None] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(4):
            outcome = runner.run_one(settings, pool)
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    done = [o for o in outcomes if o is not None]
    assert {o.job_id for o in done} == job_ids and len(done) == 4  # each job ran once
    assert sorted(o.version for o in done if o.version) == [1, 2, 3, 4]
    rows = conn.execute("SELECT version, job_id, active FROM models ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4] and {r[1] for r in rows} == job_ids
    assert sum(r[2] for r in rows) == 1


def test_release_puts_an_unfinished_job_back(settings: Settings, pool: ConnectionPool,
                                             conn: psycopg.Connection,
                                             machine_id: UUID) -> None:
    job_id = queue_manual_job(conn, machine_id)
    one = runner.Runner(settings, pool, threading.Event(), threading.Event())
    assert one.release() is None  # nothing running
    one.current = runner.claim(pool)
    assert one.release() == job_id
    assert job_row(conn, job_id) == ("queued", 1, runner.SHUTDOWN_RELEASED)
    with pool.connection() as c:
        assert jobs.claim(c) is not None  # claimable again (attempts 2)
