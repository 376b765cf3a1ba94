"""Group commit for HTTP ingest: the batches of concurrent requests share one transaction.

A request hands its validated batch to the process's `GroupCommitter` and awaits it. One
writer thread takes whatever batches are queued (the first one alone when the service is
idle, so no request waits for company), stores them with `insert_batches` in one
transaction, commits, and only then answers each request: acknowledged still means
committed, and a commit (an fsync) is paid once per group instead of once per request.

A batch is still stored whole or not at all: when the database refuses a group for a
reason tied to its content, each batch of the group is retried in a transaction of its
own, so one bad batch fails alone. A deadlock or serialization failure retries the group.
An outage (no connection within the pool's timeout) fails every batch of the group with
that error, as it would have failed each request on its own.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import errors as pgerrors
from psycopg_pool import ConnectionPool, PoolTimeout

from ingest.store import InsertResult, SensorBatch, UnknownSensorError, insert_batches

log = logging.getLogger("earshot.ingest")

MAX_GROUP_BATCHES = 256
MAX_GROUP_WINDOWS = 20_000
RETRIES = 3
# Not outages: the content of some batch made the database refuse the statement.
_REFUSALS = (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError)
_TRANSIENT = (pgerrors.DeadlockDetected, pgerrors.SerializationFailure)
Outcome = InsertResult | BaseException
# The database cannot be reached (pool checkout timed out, connection lost): not the
# group's fault, and every batch behind it would meet the same.
_OUTAGE = (PoolTimeout, psycopg.OperationalError)


@dataclass(eq=False)
class _Pending:
    batch: SensorBatch
    settle: Callable[[Outcome], None]
    windows: int = field(init=False)

    def __post_init__(self) -> None:
        self.windows = len(self.batch.times_us)


class GroupCommitter:
    """Stores batches for a pool's users; `store` is awaited from the event loop."""

    def __init__(self, pool: ConnectionPool, max_batches: int = MAX_GROUP_BATCHES,
                 max_windows: int = MAX_GROUP_WINDOWS) -> None:
        self._pool, self._max_batches, self._max_windows = pool, max_batches, max_windows
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()
        self.groups = self.batches = 0  # counters, for tests and benchmarks

    async def store(self, batch: SensorBatch) -> InsertResult:
        """The batch's result once its group has committed; raises UnknownSensorError when
        the sensor no longer exists, or the database error that failed the group."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[InsertResult] = loop.create_future()

        def settle(outcome: Outcome) -> None:
            loop.call_soon_threadsafe(_resolve, future, outcome)

        self._start()
        self._queue.put(_Pending(batch, settle))
        return await future

    def close(self) -> None:
        """Stop the writer after the batches already queued."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()
        if self._conn is not None:
            self._pool.putconn(self._conn)
            self._conn = None

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="group-commit",
                                                    daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while group := self._next_group():
            self._commit(group)

    def _next_group(self) -> list[_Pending]:
        first = self._queue.get()
        if first is None:
            return []
        group, windows = [first], first.windows
        while len(group) < self._max_batches and windows < self._max_windows:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this group
                break
            group.append(item)
            windows += item.windows
        return group

    def _commit(self, group: list[_Pending]) -> None:
        outcomes = self._store_group(group)
        self.groups, self.batches = self.groups + 1, self.batches + len(group)
        for pending, outcome in zip(group, outcomes, strict=True):
            pending.settle(outcome)
        if isinstance(outcomes[0], _OUTAGE):
            self._fail_queued(outcomes[0])

    def _fail_queued(self, outage: BaseException) -> None:
        """The database is unreachable: the batches that queued while this group waited
        fail with it now, instead of each group waiting out its own pool timeout in turn
        (a request would otherwise wait one timeout per group ahead of it)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is None:
                self._queue.put(None)  # close() asked to stop: let _next_group see it
                return
            item.settle(outage)

    def _store_group(self, group: list[_Pending]) -> list[Outcome]:
        for attempt in range(RETRIES):
            try:
                return self._transaction(group)
            except _TRANSIENT as exc:
                if attempt == RETRIES - 1:
                    return [exc] * len(group)
            except _REFUSALS as exc:
                if len(group) == 1:
                    return [exc]
                log.warning("a group of %d batches was refused (%s); storing them one by "
                            "one", len(group), exc)
                return [self._store_group([p])[0] for p in group]
            except Exception as exc:  # outage or bug: every request of the group fails
                return [exc] * len(group)
        raise AssertionError("unreachable")

    def _transaction(self, group: list[_Pending]) -> list[Outcome]:
        """One transaction in pipeline mode: BEGIN, the statements and COMMIT cost two
        round trips. The writer keeps its connection between groups (a checkout costs
        the pool's health-check round trip) and hands it back when anything fails."""
        reused, conn = self._conn is not None, self._conn or self._pool.getconn()
        self._conn = None
        try:
            with conn.pipeline(), conn.transaction():
                results = insert_batches(conn, [p.batch for p in group])
        except psycopg.OperationalError:
            self._pool.putconn(conn)
            if reused and conn.broken:  # lost while kept (a database restart): not an outage
                return self._transaction(group)
            raise
        except BaseException:
            self._pool.putconn(conn)
            raise
        self._conn = conn  # only a connection that just committed is kept
        return [UnknownSensorError(p.batch.sensor_id) if r is None else r
                for p, r in zip(group, results, strict=True)]


def _resolve(future: asyncio.Future[InsertResult], outcome: Outcome) -> None:
    if future.done():  # the request was cancelled (client gone); its batch is stored anyway
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
