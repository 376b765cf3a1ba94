"""Leader election among `earshot worker` processes, on PostgreSQL itself.

Every worker shares the queue work (scoring, training, webhook delivery: SKIP LOCKED
claims). The periodic duties (retrain crons, rollups, retention, no-data checks) run in
exactly one of them: the one whose dedicated connection holds a session-level advisory
lock (`service.queries.leader`). Followers try the lock every `leader_poll_s`.

When the leader dies its session ends and PostgreSQL releases the lock: at once when the
process is killed (its OS closes the socket), within about `KEEPALIVE_S` when its host or
network vanishes (TCP keepalives on both ends of the lock connection). A follower then
takes over at its next poll. A leader whose lock connection fails steps down at once.

Two leaders can overlap briefly only in a network partition (the old one has not yet
noticed that the server dropped its session); every duty is idempotent and guards itself
(transaction-scoped advisory locks, one job row per cron slot), so an overlap does the
work twice at worst, never wrongly.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

import psycopg

from service.queries import leader as q
from service.settings import Settings

log = logging.getLogger("earshot.leader")
# keepalive idle + interval * count: how long a silent peer keeps the lock at most.
KEEPALIVE_IDLE_S, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT = 4, 2, 3
KEEPALIVE_S = KEEPALIVE_IDLE_S + KEEPALIVE_INTERVAL_S * KEEPALIVE_COUNT


def process_name() -> str:
    """How this process appears as the leader (pg_stat_activity.application_name)."""
    return f"earshot-leader {socket.gethostname()[:30]} pid {os.getpid()}"


class Leadership:
    """Campaigns for the leader lock in its own thread (`run`) and calls `on_elected` /
    `on_deposed` (from that thread) when leadership changes hands."""

    def __init__(self, settings: Settings, stop: threading.Event,
                 on_elected: Callable[[], None], on_deposed: Callable[[], None]) -> None:
        self.settings, self.stop = settings, stop
        self.on_elected, self.on_deposed = on_elected, on_deposed
        self.name = process_name()
        self.leading = threading.Event()

    def run(self) -> None:
        conn: psycopg.Connection | None = None
        try:
            while not self.stop.is_set():
                conn = self._step(conn)
                self.stop.wait(self.settings.leader_poll_s)
        finally:
            if self.leading.is_set():
                self._depose("shutting down")
            if conn is not None:
                conn.close()  # releases the lock now: a follower takes over at its next poll

    def _step(self, conn: psycopg.Connection | None) -> psycopg.Connection | None:
        """One campaign round; returns the lock connection to keep (None: reconnect)."""
        try:
            if conn is None or conn.closed:
                conn = self._connect()
            if self.leading.is_set():
                q.ping(conn)
            elif q.try_lock(conn):
                self.leading.set()
                log.info("leader: elected (%s); running the periodic duties", self.name)
                self.on_elected()
            return conn
        except psycopg.Error as exc:
            if self.leading.is_set():
                self._depose(f"lock connection lost: {str(exc).strip()[:200]}")
            if conn is not None:
                conn.close()
            return None

    def _depose(self, why: str) -> None:
        self.leading.clear()
        log.warning("leader: stepping down (%s)", why)
        self.on_deposed()

    def _connect(self) -> psycopg.Connection:
        # Keepalives on both ends: the server drops the session of a vanished leader (and
        # with it the lock), the leader notices a vanished server, within KEEPALIVE_S.
        server_keepalives = (f"-c tcp_keepalives_idle={KEEPALIVE_IDLE_S} "
                             f"-c tcp_keepalives_interval={KEEPALIVE_INTERVAL_S} "
                             f"-c tcp_keepalives_count={KEEPALIVE_COUNT}")
        return psycopg.connect(
            self.settings.resolved_database_url(), autocommit=True,
            connect_timeout=max(1, int(self.settings.db_timeout_s)),
            application_name=self.name, keepalives=1, keepalives_idle=KEEPALIVE_IDLE_S,
            keepalives_interval=KEEPALIVE_INTERVAL_S, keepalives_count=KEEPALIVE_COUNT,
            options=server_keepalives)
