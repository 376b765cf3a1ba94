"""`earshot worker` (alias `earshot scheduler`): one process running

- `train_concurrency` job-runner threads (woken by NOTIFY 'job:…', polling as fallback),
- the background loops listed in `service.scheduler.registry` (scoring, webhook delivery),
- while it is the leader (`service.scheduler.leader`): APScheduler with each machine's
  retrain cron (re-synced from `model_configs` every `scheduler_sync_s` and at once on
  NOTIFY `earshot_jobs` 'config:…') and the periodic jobs of the registry.

Any number of these processes may run against one database: jobs, ingest batches and
webhook deliveries are claimed with SKIP LOCKED, and exactly one process at a time (the
holder of the leader lock) runs the periodic duties; another takes over within seconds
when it dies. SIGTERM/SIGINT stop it within `scheduler_shutdown_s` plus a few seconds; a
fit still running then is put back in the queue for another worker.
"""

from __future__ import annotations

import gc
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import psycopg
from apscheduler.schedulers.background import BackgroundScheduler
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import ValidationError

from service import logs
from service.db import make_pool
from service.queries.model_configs import JOBS_CHANNEL
from service.scheduler import registry
from service.scheduler.cron import CronSync, TriggerFactory, load_trigger_factory
from service.scheduler.leader import Leadership
from service.settings import Settings, get_settings
from service.training.runner import Runner

log = logging.getLogger("earshot.scheduler")


def interval_of(settings: Settings, name: str, default_s: float) -> float:
    """A periodic job's interval: its setting (registry.INTERVAL_SETTINGS) if it has one."""
    setting = registry.INTERVAL_SETTINGS.get(name)
    return float(getattr(settings, setting)) if setting else default_s


class SchedulerProcess:
    def __init__(self, settings: Settings, *, pool: ConnectionPool | None = None,
                 loops: list[str] | None = None,
                 periodic: list[tuple[str, float]] | None = None,
                 trigger_factory: TriggerFactory | None = None) -> None:
        self.settings = settings
        # Resolve everything first: a missing entry stops the process before it starts.
        self.loops = registry.resolve_all(registry.BACKGROUND_LOOPS if loops is None else loops)
        periodic = registry.PERIODIC_JOBS if periodic is None else periodic
        resolved = registry.resolve_all([name for name, _ in periodic])
        self.periodic = [(name, resolved[name], interval_of(settings, name, interval))
                         for name, interval in periodic]
        self.trigger_factory = trigger_factory or load_trigger_factory(settings.retrain_trigger)
        self.owned_pool = pool is None
        self.pool = pool or make_pool(settings)
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.scheduler = BackgroundScheduler(timezone=UTC)
        self.cron = CronSync(self.scheduler, self.pool, self.trigger_factory)
        self.runners = [Runner(settings, self.pool, self.stop, self.wake)
                        for _ in range(settings.train_concurrency)]
        self.threads: list[threading.Thread] = []
        self.leadership = Leadership(settings, self.stop, self._elected, self._deposed)

    def start(self) -> None:
        if self.owned_pool:
            self.pool.open(wait=False)
        self.scheduler.start()
        self._thread("leader", self.leadership.run)
        self._thread("listener", self._listen)
        for i, runner in enumerate(self.runners):
            self._thread(f"job-runner-{i}", runner.run)
        for name, fn in self.loops.items():
            self._thread(name, fn, self.settings, self.pool, self.stop)
        log.info("scheduler started: %d job runner(s), loops %s, periodic %s",
                 len(self.runners), list(self.loops), [p[0] for p in self.periodic])

    def _elected(self) -> None:
        """Leader now: run the periodic duties, starting at once."""
        for name, fn, interval in self.periodic:
            self.scheduler.add_job(fn, "interval", seconds=interval, id=f"periodic:{name}",
                                   args=(self.settings, self.pool), coalesce=True,
                                   max_instances=1, next_run_time=datetime.now(UTC))
        self.scheduler.add_job(self._sync_and_catch_up, id="cron-catch-up",
                               next_run_time=datetime.now(UTC))
        self.scheduler.add_job(self.cron.sync, "interval", seconds=self.settings.scheduler_sync_s,
                               id="cron-sync", coalesce=True, max_instances=1)

    def _sync_and_catch_up(self) -> None:
        self.cron.sync()
        self.cron.catch_up()  # a slot the previous leader died before firing

    def _deposed(self) -> None:
        for job in self.scheduler.get_jobs():
            if job.id.startswith("periodic:") or job.id.startswith("cron-"):
                job.remove()
        self.cron.clear()

    def _thread(self, name: str, target: Callable[..., Any], *args: Any) -> None:
        thread = threading.Thread(target=self._guard, args=(name, target, *args), name=name,
                                  daemon=True)
        thread.start()
        self.threads.append(thread)

    def _guard(self, name: str, target: Callable[..., Any], *args: Any) -> None:
        try:
            target(*args)
        except Exception:
            # A dead loop must not leave a half-working scheduler behind: stop the process
            # so its supervisor restarts it.
            log.exception("%s crashed; stopping the scheduler", name)
            self.stop.set()

    def _listen(self) -> None:
        """LISTEN on the jobs channel: wake the runners, re-sync crons on config changes."""
        while not self.stop.is_set():
            try:
                with psycopg.connect(self.settings.resolved_database_url(), autocommit=True,
                                     connect_timeout=max(1, int(self.settings.db_timeout_s))
                                     ) as conn:
                    conn.execute(f"LISTEN {JOBS_CHANNEL}")
                    self.wake.set()  # anything queued while we were not listening
                    self._drain(conn)
            except psycopg.Error as exc:
                log.warning("listener: database unavailable (%s); retrying", exc)
                self.stop.wait(self.settings.scheduler_poll_s)

    def _drain(self, conn: psycopg.Connection) -> None:
        while not self.stop.is_set():
            for notify in conn.notifies(timeout=self.settings.scheduler_poll_s):
                if notify.payload.startswith("config:"):
                    if self.leadership.leading.is_set():
                        self.cron.sync()
                else:
                    self.wake.set()

    def shutdown(self) -> None:
        self.stop.set()
        self.wake.set()
        self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + self.settings.scheduler_shutdown_s
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for runner in self.runners:
            try:
                released = runner.release()
            except (psycopg.Error, PoolTimeout) as exc:  # it goes stale and is re-queued
                log.warning("could not release an unfinished training job: %s", exc)
                continue
            if released is not None:
                log.warning("released unfinished training job %s", released)
        if self.owned_pool:
            self.pool.close(timeout=self.settings.db_timeout_s)
        log.info("scheduler stopped")


def main() -> None:
    try:
        settings = get_settings()
    except ValidationError as exc:
        sys.exit(f"earshot worker: bad configuration: {exc}")
    logs.configure(settings.log_level)
    try:
        process = SchedulerProcess(settings)
    except registry.RegistryError as exc:
        sys.exit(f"earshot worker: cannot start: {exc}")

    def _stop(signum: int, _: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        process.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # The imported ML stack is a huge, permanent object graph: keep it out of every
    # collection (shorter GC pauses, and exit no longer spends seconds collecting it).
    gc.freeze()
    process.start()
    try:
        while not process.stop.wait(1.0):
            pass
    finally:
        process.shutdown()
