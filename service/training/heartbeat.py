"""A claimed job's lease kept alive while it runs: a daemon thread beats every
`train_heartbeat_s` on a pooled connection, so another process takes the job over only
once the beats stop (the process died). A failed beat is logged, never raised: the next
one may succeed, and a job that really lost its lease finds out when it stores."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from service.settings import Settings

log = logging.getLogger("earshot.training")


@contextmanager
def beating(settings: Settings, pool: ConnectionPool, what: str,
            beat: Callable[[psycopg.Connection], object]) -> Iterator[None]:
    """Run `beat(conn)` every heartbeat interval while the block runs."""
    done = threading.Event()

    def loop() -> None:
        while not done.wait(settings.train_heartbeat_s):
            try:
                with pool.connection() as conn:
                    beat(conn)
            except (psycopg.Error, PoolTimeout) as exc:
                log.warning("heartbeat of %s failed: %s", what, exc)

    thread = threading.Thread(target=loop, name=f"heartbeat-{what}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=settings.db_timeout_s)
