"""Per-machine retrain crons as APScheduler jobs, re-synced from `model_configs`.

A firing does not train: it inserts the slot's job row (`ON CONFLICT DO NOTHING` on
(machine, target, slot)) and the job runners of every worker take it from the queue. Only
the leader worker keeps these crons; should two processes ever fire for one slot (a
leader change, a partition), only one insert per slot succeeds, so a slot never starts
two runs. A new leader catches up on a slot fired less than `SLOT_LOOKBACK` ago.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from psycopg_pool import ConnectionPool, PoolTimeout

from service.queries import jobs, model_configs
from service.scheduler.registry import resolve

log = logging.getLogger("earshot.scheduler")
TriggerFactory = Callable[[str], BaseTrigger]
MISFIRE_GRACE_S = 60
# A firing runs within the misfire grace of its slot, so its slot lies in this window.
SLOT_LOOKBACK = timedelta(seconds=2 * MISFIRE_GRACE_S)
MAX_SLOT_STEPS = 100_000
JOB_PREFIX = "retrain:"


def crontab_trigger(expr: str) -> BaseTrigger:
    """The default factory: a 5-field crontab in UTC."""
    return CronTrigger.from_crontab(expr, timezone=UTC)


def load_trigger_factory(name: str) -> TriggerFactory:
    factory: TriggerFactory = resolve(name)
    return factory


def current_slot(trigger: BaseTrigger, now: datetime) -> datetime | None:
    """The latest fire time of `trigger` at or before `now` (within the lookback).

    APScheduler 3 does not hand a job its scheduled time, so the firing recomputes it;
    fire times are wall-clock aligned, so every process computes the same slot.
    """
    slot = None
    candidate = trigger.get_next_fire_time(None, now - SLOT_LOOKBACK)
    for _ in range(MAX_SLOT_STEPS):
        if candidate is None or candidate > now:
            break
        slot = candidate
        candidate = trigger.get_next_fire_time(candidate, candidate + timedelta(microseconds=1))
    return slot


def fire(pool: ConnectionPool, machine_id: UUID, target: str,
         trigger: BaseTrigger) -> UUID | None:
    """Queue the training job of the current slot; None if another scheduler did."""
    slot = current_slot(trigger, datetime.now(UTC))
    if slot is None:
        log.warning("retrain of %s/%s fired outside any slot", machine_id, target)
        return None
    try:
        with pool.connection() as conn, conn.transaction():
            job_id = jobs.insert_slot(conn, machine_id, target, slot)
            if job_id is not None:
                model_configs.notify_scheduler(conn, f"job:{job_id}")
    except (psycopg.Error, PoolTimeout) as exc:  # database down, or machine just deleted
        log.warning("slot %s of %s/%s not queued: %s", slot.isoformat(), machine_id, target,
                    exc)
        return None
    if job_id is None:
        log.info("slot %s of %s/%s already queued by another scheduler", slot.isoformat(),
                 machine_id, target)
    else:
        log.info("slot %s of %s/%s queued as job %s", slot.isoformat(), machine_id, target,
                 job_id)
    return job_id


class CronSync:
    """Keeps one APScheduler job per configured retrain cron."""

    def __init__(self, scheduler: BaseScheduler, pool: ConnectionPool,
                 trigger_factory: TriggerFactory) -> None:
        self.scheduler, self.pool, self.trigger_factory = scheduler, pool, trigger_factory
        self._crons: dict[str, str] = {}
        self._lock = threading.Lock()  # the periodic sync and NOTIFY-driven syncs overlap

    def sync(self) -> None:
        try:
            with self.pool.connection() as conn:
                wanted = {f"{JOB_PREFIX}{m}:{t}": (m, t, cron)
                          for m, t, cron in model_configs.cron_configs(conn)}
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("cron sync: database unavailable (%s)", exc)
            return
        with self._lock:
            for job_id in set(self._crons) - set(wanted):
                self.scheduler.remove_job(job_id)
                del self._crons[job_id]
                log.info("retrain cron %s removed", job_id)
            for job_id, (machine_id, target, cron) in wanted.items():
                if self._crons.get(job_id) != cron:
                    self._schedule(job_id, machine_id, target, cron)

    def _schedule(self, job_id: str, machine_id: UUID, target: str, cron: str) -> None:
        try:
            trigger = self.trigger_factory(cron)
        except ValueError as exc:  # validated on PUT; only a hand-edited row gets here
            log.error("retrain cron %r of %s is invalid: %s", cron, job_id, exc)
            return
        self.scheduler.add_job(fire, trigger=trigger, id=job_id, replace_existing=True,
                               args=(self.pool, machine_id, target, trigger),
                               coalesce=True, max_instances=1,
                               misfire_grace_time=MISFIRE_GRACE_S)
        self._crons[job_id] = cron
        log.info("retrain cron %s: %r", job_id, cron)

    def clear(self) -> None:
        """Forget every retrain cron (this process stopped leading)."""
        with self._lock:
            for job_id in self._crons:
                if self.scheduler.get_job(job_id) is not None:
                    self.scheduler.remove_job(job_id)
            self._crons.clear()

    def catch_up(self) -> list[UUID]:
        """Queue the current slot of every cron whose slot lies within the lookback (a new
        leader calls this: the previous one may have died just before firing). A slot
        already queued is not queued again (unique per slot); the new job ids."""
        queued: list[UUID] = []
        for job in self.scheduler.get_jobs():
            if not job.id.startswith(JOB_PREFIX):
                continue
            pool, machine_id, target, trigger = job.args
            if current_slot(trigger, datetime.now(UTC)) is not None:
                job_id = fire(pool, machine_id, target, trigger)
                if job_id is not None:
                    queued.append(job_id)
        return queued

    @property
    def crons(self) -> dict[str, str]:
        with self._lock:
            return dict(self._crons)
