"""Fixtures for the alerting tests: machines and sensors in the real test database, score
rows fed through the real `on_scored` hook, a signature-checking receiver on 127.0.0.1 and
the delivery worker running in a thread."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from service import security
from service.alerting import delivery, outbox
from service.alerting.hooks import ScoredWindow, on_scored
from service.db import make_pool
from service.queries import webhooks as webhook_queries
from service.settings import Settings

ALL_ALERT_EVENTS = ["alert.firing", "alert.resolved", "alert.acknowledged", "sensor.no_data"]


def make_machine(conn: psycopg.Connection, sensors: int = 1) -> tuple[UUID, list[UUID]]:
    row = conn.execute("INSERT INTO machines (name, kind) VALUES (%s, 'bldc') RETURNING id",
                       (f"machine-{uuid.uuid4().hex[:8]}",)).fetchone()
    assert row is not None
    sensor_ids = []
    for i in range(sensors):
        token_hash = security.digest(security.new_token(security.INGEST_TOKEN_PREFIX))
        found = conn.execute(
            "INSERT INTO sensors (machine_id, name, embedding_kind, dim, token_hash) "
            "VALUES (%s, %s, 'logmel-v1', 128, %s) RETURNING id",
            (row[0], f"mic-{i}", token_hash)).fetchone()
        assert found is not None
        sensor_ids.append(found[0])
    conn.commit()
    return row[0], sensor_ids


def feed(conn: psycopg.Connection, machine_id: UUID, sensor_id: UUID, start: datetime,
         scores: list[float], threshold: float, version: int = 1) -> datetime:
    """Store one score row per value (1 s apart) and run the alert hook on them in one
    transaction, as the scorer does; the time after the last window."""
    conn.commit()  # end a test's read transaction: the hook's writes must commit here
    windows = [ScoredWindow(t=start + timedelta(seconds=i), sensor_id=sensor_id, score=s,
                            threshold=threshold, anomalous=s > threshold)
               for i, s in enumerate(scores)]
    with conn.transaction():
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO scores (machine_id, sensor_id, t, model_version, score, "
                "threshold, anomalous) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(machine_id, w.sensor_id, w.t, version, w.score, w.threshold, w.anomalous)
                 for w in windows])
        on_scored(conn, machine_id, version, windows)
    return start + timedelta(seconds=len(scores))


def add_webhook(conn: psycopg.Connection, url: str, events: list[str] | None = None,
                machine_ids: list[UUID] | None = None) -> tuple[UUID, str]:
    secret = outbox.new_secret()
    with conn.transaction():
        row = webhook_queries.insert(conn, url, events or ALL_ALERT_EVENTS, machine_ids,
                                     None, secret)
    return row["id"], secret


def wait_for(check: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")


def now_s() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def fast_settings(settings: Settings) -> Settings:
    """Retries in fractions of a second so fault-injection tests stay short."""
    return settings.model_copy(update={
        "webhook_retry_base_s": 0.1, "webhook_retry_max_s": 0.5, "webhook_timeout_s": 1.0,
        "webhook_lease_s": 3.0, "webhook_workers": 4})


@pytest.fixture
def pool(fast_settings: Settings) -> Iterator[ConnectionPool]:
    the_pool = make_pool(fast_settings, max_size=8)
    the_pool.open(wait=True)
    try:
        yield the_pool
    finally:
        the_pool.close()


class WorkerThread:
    """`delivery.run` in a thread, as the scheduler process runs it."""

    def __init__(self, settings: Settings, pool: ConnectionPool) -> None:
        self.settings, self.pool = settings, pool
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=delivery.run,
                                       args=(settings, pool, self.stop_event), daemon=True)

    def start(self) -> WorkerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "delivery worker did not stop"


@pytest.fixture
def worker(fast_settings: Settings, pool: ConnectionPool) -> Iterator[WorkerThread]:
    the_worker = WorkerThread(fast_settings, pool).start()
    try:
        yield the_worker
    finally:
        the_worker.stop()
