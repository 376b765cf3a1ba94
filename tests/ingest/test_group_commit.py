"""Group commit of ingest batches on the real TimescaleDB: concurrent batches share
transactions, each still stored whole or not at all and answered with its own counts."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from uuid import UUID

import numpy as np
import psycopg
import pytest
from psycopg_pool import ConnectionPool, PoolTimeout

from ingest.group_commit import GroupCommitter
from ingest.store import InsertResult, SensorBatch, UnknownSensorError, insert_windows
from service.db import make_pool
from service.settings import Settings
from tests.service.scoring.factories import make_machine

DIM = 4
US = 1_000_000


@pytest.fixture
def api_pool(settings: Settings) -> Iterator[ConnectionPool]:
    """An autocommit pool, as the API's."""
    pool = make_pool(settings, max_size=4, autocommit=True)
    pool.open(wait=True)
    try:
        yield pool
    finally:
        pool.close()


def make_sensor(conn: psycopg.Connection) -> UUID:
    return make_machine(conn, kind="vendor", dim=DIM)[1][0]


def batch(sensor: UUID, first_s: int, n: int) -> SensorBatch:
    times = (int(time.time()) - 3600 + first_s + np.arange(n, dtype=np.int64)) * US
    return SensorBatch(sensor, times, np.full((n, DIM), first_s, dtype=np.float32))


def count(conn: psycopg.Connection, table: str, sensor: UUID) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table} WHERE sensor_id = %s", (sensor,)).fetchone()
    conn.commit()
    return int(row[0]) if row else 0


async def store_all(committer: GroupCommitter,
                    batches: list[SensorBatch]) -> list[InsertResult | BaseException]:
    return await asyncio.gather(*(committer.store(b) for b in batches), return_exceptions=True)


def test_waiting_batches_share_one_transaction(api_pool: ConnectionPool,
                                               conn: psycopg.Connection) -> None:
    """While a group waits (here on a row lock), the batches arriving meanwhile form the
    next group: 1 + 1 groups for 12 batches, each answered with its own counts."""
    sensors = [make_sensor(conn) for _ in range(3)]
    committer = GroupCommitter(api_pool)
    conn.execute("SELECT id FROM sensors WHERE id = %s FOR UPDATE", (sensors[0],))

    async def scenario() -> list[InsertResult | BaseException]:
        first = asyncio.ensure_future(committer.store(batch(sensors[0], 0, 5)))
        await asyncio.sleep(0.3)  # the writer now waits for the lock held above
        # A sensor's next batch starts 3 s later: it repeats 2 windows of the one before.
        rest = [batch(sensors[k % 3], 10 + (k // 3) * 3, 5) for k in range(11)]
        later = asyncio.ensure_future(store_all(committer, rest))
        await asyncio.sleep(0.3)
        threading.Thread(target=conn.commit).start()  # release the lock
        return [await first, *await later]

    try:
        results = asyncio.run(scenario())
    finally:
        committer.close()
    assert committer.groups == 2 and committer.batches == 12
    assert all(isinstance(r, InsertResult) for r in results), results
    answers = [r for r in results if isinstance(r, InsertResult)]
    assert sum(r.accepted for r in answers) == 44 and sum(r.duplicates for r in answers) == 16
    assert [count(conn, "embeddings", s) for s in sensors] == [19, 14, 11]


def test_a_refused_batch_fails_alone(api_pool: ConnectionPool, conn: psycopg.Connection) -> None:
    """A batch the database refuses (a time PostgreSQL cannot represent) fails with that
    error; the batches grouped with it are stored, and nothing of it is."""
    good, bad = make_sensor(conn), make_sensor(conn)
    never = np.array([np.iinfo(np.int64).max], dtype=np.int64)
    far = SensorBatch(bad, never, np.zeros((1, DIM), np.float32))
    committer = GroupCommitter(api_pool)
    try:
        results = asyncio.run(store_all(committer, [batch(good, 0, 3), far,
                                                    batch(good, 3, 3)]))
    finally:
        committer.close()
    assert results[0] == InsertResult(3, 0) and results[2] == InsertResult(3, 0)
    assert isinstance(results[1], psycopg.DataError), results[1]
    assert count(conn, "embeddings", good) == 6
    assert count(conn, "embeddings", bad) == 0 and count(conn, "ingest_batches", bad) == 0


def test_a_deleted_sensor_stores_nothing(api_pool: ConnectionPool,
                                         conn: psycopg.Connection) -> None:
    kept, gone = make_sensor(conn), make_sensor(conn)
    conn.execute("DELETE FROM sensors WHERE id = %s", (gone,))
    conn.commit()
    committer = GroupCommitter(api_pool)
    try:
        results = asyncio.run(store_all(committer, [batch(gone, 0, 3), batch(kept, 0, 3)]))
    finally:
        committer.close()
    assert isinstance(results[0], UnknownSensorError) and results[1] == InsertResult(3, 0)
    assert count(conn, "embeddings", gone) == 0
    with pytest.raises(UnknownSensorError):
        insert_windows(conn, gone, batch(gone, 0, 1).times_us, batch(gone, 0, 1).values)
    conn.rollback()


def test_queue_rows_and_last_seen_follow_what_was_stored(conn: psycopg.Connection) -> None:
    """One queue row per stored batch with the batch's time range; a fully duplicate
    batch queues nothing."""
    sensor = make_sensor(conn)
    b = batch(sensor, 0, 4)
    assert insert_windows(conn, sensor, b.times_us, b.values) == InsertResult(4, 0)
    assert insert_windows(conn, sensor, b.times_us, b.values) == InsertResult(0, 4)
    conn.commit()
    rows = conn.execute("SELECT extract(epoch FROM t_min)::bigint, extract(epoch FROM t_max)"
                        "::bigint, n FROM ingest_batches WHERE sensor_id = %s",
                        (sensor,)).fetchall()
    assert rows == [(int(b.times_us[0]) // US, int(b.times_us[-1]) // US, 4)]
    seen = conn.execute("SELECT last_seen_at FROM sensors WHERE id = %s", (sensor,)).fetchone()
    assert seen is not None and seen[0] is not None


def test_in_an_outage_queued_batches_fail_with_the_group_ahead(settings: Settings,
                                                               conn: psycopg.Connection) -> None:
    """The database unreachable: the batches that queued while a group waited out the pool
    timeout fail with it, not one timeout later each."""
    with socket.socket() as sock:  # a port nothing listens on: every connect is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = settings.model_copy(update={
        "database_url": f"postgresql://earshot@127.0.0.1:{port}/earshot", "db_timeout_s": 1.0})
    pool = make_pool(down, max_size=2, autocommit=True)
    pool.open(wait=False)
    committer = GroupCommitter(pool)
    sensor = make_sensor(conn)

    async def first_then_queued() -> list[InsertResult | BaseException]:
        first = asyncio.ensure_future(committer.store(batch(sensor, 0, 1)))
        await asyncio.sleep(0.3)  # the first group is waiting for a connection by now
        rest = [committer.store(batch(sensor, k, 1)) for k in range(1, 6)]
        return await asyncio.gather(first, *rest, return_exceptions=True)

    try:
        started = time.monotonic()
        outcomes = asyncio.run(first_then_queued())
        elapsed = time.monotonic() - started
    finally:
        committer.close()
        pool.close()
    assert all(isinstance(o, (PoolTimeout, psycopg.OperationalError)) for o in outcomes)
    assert elapsed < 1.8, f"{elapsed:.2f} s: the queued batches waited a timeout of their own"
