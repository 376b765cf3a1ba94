"""A connection pool on the test database and scoring workers run as real threads."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from psycopg_pool import ConnectionPool

from service.scoring import worker
from service.settings import Settings

JOIN_TIMEOUT_S = 10.0


class WorkerThread:
    """`service.scoring.worker.run` in a thread, stopped through its stop event."""

    def __init__(self, settings: Settings, pool: ConnectionPool) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=worker.run, args=(settings, pool, self.stop),
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(JOIN_TIMEOUT_S)
        assert not self.thread.is_alive(), "the scoring worker did not stop"


@pytest.fixture
def workers(settings: Settings, pool: ConnectionPool) -> Iterator[list[WorkerThread]]:
    """Start workers with `workers.append(WorkerThread(settings, pool))`; all are stopped
    at teardown."""
    started: list[WorkerThread] = []
    yield started
    for running in started:
        if running.thread.is_alive():
            running.close()
