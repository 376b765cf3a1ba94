"""The scoring loop of the scheduler process: wakes on `earshot_ingest` notifications (a
dedicated autocommit LISTEN connection) or at the latest every `scoring_poll_s`, and runs
scorer iterations until the queue is drained.

Several scorer processes may run at once: batches are claimed with `FOR UPDATE SKIP
LOCKED`, and score inserts are idempotent.
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from psycopg_pool import ConnectionPool

from service.queries import scores as q
from service.scoring.scorer import ModelLoader, Scorer, StepResult, default_loader
from service.settings import Settings

log = logging.getLogger("earshot.scoring")
# Bounds the back-off after a database error; the loop retries the same batches.
MAX_BACKOFF_S = 5.0


def run(settings: Settings, pool: ConnectionPool, stop: threading.Event,
        loader: ModelLoader = default_loader) -> None:
    """Score until `stop` is set. `loader` returns a machine's active detector."""
    scorer = Scorer(settings.scoring_chunk_windows, settings.scoring_claim_rows, loader,
                    model_cache=settings.scoring_model_cache)
    listener: psycopg.Connection | None = None
    failures = 0
    try:
        while not stop.is_set():
            listener = listener or _listen(settings)
            try:
                result = _drain(scorer, pool, stop)
                failures = 0
            except Exception:
                failures += 1
                log.exception("scoring iteration failed; retrying")
                stop.wait(min(MAX_BACKOFF_S, 0.2 * 2 ** failures))
                continue
            if not result.more:
                listener = _wait(listener, settings.scoring_poll_s, stop)
    finally:
        if listener is not None:
            listener.close()


def _drain(scorer: Scorer, pool: ConnectionPool, stop: threading.Event) -> StepResult:
    """Iterations back to back while the queue has more (bounded, to recheck `stop`)."""
    result = StepResult()
    for _ in range(100):
        with pool.connection() as conn:
            started = time.perf_counter()
            result = scorer.step(conn)
        if result.claimed:
            log.debug("scored", extra={"batches": result.claimed, "windows": result.windows,
                                       "inserted": result.inserted,
                                       "seconds": round(time.perf_counter() - started, 4)})
        if not result.more or stop.is_set():
            break
    return result


def _listen(settings: Settings) -> psycopg.Connection | None:
    try:
        conn = psycopg.connect(settings.resolved_database_url(), autocommit=True,
                               connect_timeout=max(1, int(settings.db_timeout_s)))
        q.listen_ingest(conn)
        return conn
    except psycopg.Error as exc:
        # Polling still scores everything; only the wake-up latency suffers.
        log.warning("cannot LISTEN for ingest notifications: %s", exc)
        return None


def _wait(listener: psycopg.Connection | None, timeout_s: float,
          stop: threading.Event) -> psycopg.Connection | None:
    """Block until a notification, the poll timeout or `stop`; returns the listener, or
    None when it broke (the next loop reconnects)."""
    if listener is None:
        stop.wait(timeout_s)
        return None
    try:
        for _ in listener.notifies(timeout=timeout_s, stop_after=1):
            pass
        # Notifications that arrived meanwhile are covered by the iteration about to run.
        for _ in listener.notifies(timeout=0):
            pass
        return listener
    except psycopg.Error as exc:
        log.warning("ingest notification connection lost: %s", exc)
        listener.close()
        return None
