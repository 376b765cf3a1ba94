"""The connection pool. Query functions take a connection and never commit; the request
or job that owns the connection decides the transaction."""

from __future__ import annotations

import psycopg
from psycopg_pool import ConnectionPool

from service.settings import Settings

# psycopg_pool retries a failed connect with doubling delays until `reconnect_timeout`
# (default 300 s): after a long outage the next attempt could be half a minute away. A
# short window ends each retry chain soon; the next request that needs a connection then
# starts a new chain with an immediate attempt, so the pool recovers within seconds of the
# database's return, however long it was gone.
RECONNECT_WINDOW_S = 3.0


def _configure(conn: psycopg.Connection) -> None:
    conn.execute("SET TIME ZONE 'UTC'")
    # JIT compiled a 5 ms timeline query for 2 s on misestimated rows; our queries are
    # short index scans that never win from it.
    conn.execute("SET jit = off")
    conn.commit()


def make_pool(settings: Settings, *, max_size: int | None = None,
              autocommit: bool = False, url: str | None = None) -> ConnectionPool:
    """A pool that opens lazily and waits at most `db_timeout_s` for a connection, so a
    database outage turns into a fast 503 instead of a hung request. `url`: another
    database than the configured one (the read replica).

    The API's pool is `autocommit`: a read (such as the token lookup) then never leaves a
    transaction open, so a route's `with conn.transaction():` is a real BEGIN/COMMIT that
    ends before the response is sent — never a savepoint committed after it."""
    size = max_size or settings.db_pool_max
    return ConnectionPool(
        url or settings.resolved_database_url(),
        min_size=min(settings.db_pool_min, size),
        max_size=size,
        timeout=settings.db_timeout_s,
        kwargs={"connect_timeout": max(1, int(settings.db_timeout_s)), "autocommit": autocommit},
        configure=_configure,
        check=ConnectionPool.check_connection,
        reconnect_timeout=RECONNECT_WINDOW_S,
        open=False,
        name="earshot" if url is None else "earshot-read",
    )
