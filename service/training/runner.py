"""Claims queued training jobs and runs them (in the scheduler process).

Lifecycle of a job: queued -> (claim: FOR UPDATE SKIP LOCKED, attempts+1) running ->
succeeded | failed. While the trainer works, a heartbeat thread touches the row. The
model row, its version number, its activation and the job's success commit in ONE
transaction that first re-checks the claim (id, attempts): a process killed mid-run
leaves only a `running` row with a stale heartbeat and no model.

Stale jobs (heartbeat older than `train_stale_s`) are RE-QUEUED rather than failed:
training is a pure function of the stored config and data, so re-running is safe, and a
scheduler restarted mid-run then recovers the job without anyone resubmitting it. After
`train_max_attempts` claims a stale job is failed instead, so a job that kills its
process every time (e.g. out of memory) cannot crash-loop the scheduler forever.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from detectors.errors import DetectorError
from service.queries import jobs, model_configs
from service.queries import models as model_queries
from service.queries.jobs import ClaimedJob
from service.settings import Settings
from service.training import events, models
from service.training.compute import ClusterUnavailableError
from service.training.errors import TrainingError
from service.training.heartbeat import beating
from service.training.targets import TrainedModel, trainer_for

log = logging.getLogger("earshot.training")
STALE_REQUEUED = "re-queued: the process running it stopped sending heartbeats"
STALE_FAILED = "failed: the process running it died on every one of its {n} attempts"
SHUTDOWN_RELEASED = "re-queued: the scheduler shut down during training"
CLUSTER_RELEASED = "re-queued: the Dask cluster was unavailable ({error})"


@dataclass(frozen=True)
class Outcome:
    job_id: UUID
    state: str  # succeeded | failed | lost (re-queued or deleted while it ran)
    version: int | None = None
    error: str | None = None


def claim(pool: ConnectionPool) -> ClaimedJob | None:
    with pool.connection() as conn, conn.transaction():
        return jobs.claim(conn)


def heartbeat(settings: Settings, pool: ConnectionPool,
              job: ClaimedJob) -> AbstractContextManager[None]:
    def beat(conn: psycopg.Connection) -> None:
        if not jobs.heartbeat(conn, job.id, job.attempts):
            log.warning("job %s is no longer ours (re-queued or deleted)", job.id)

    return beating(settings, pool, f"job {job.id}", beat)


def finish(settings: Settings, pool: ConnectionPool, job: ClaimedJob,
           model: TrainedModel) -> Outcome:
    """Store the model under the next version, activate it if configured, mark the job
    succeeded and queue the webhook event: all or nothing."""
    with pool.connection() as conn, conn.transaction():
        if not jobs.lock_owned(conn, job.id, job.attempts):
            return Outcome(job.id, "lost")
        model_queries.lock_versions(conn, job.machine_id, job.target)
        row: dict[str, Any] = {**asdict(model), "machine_id": job.machine_id,
                               "target": job.target, "job_id": job.id}
        version = model_queries.insert_model(conn, row)
        config = model_configs.get_config(conn, job.machine_id, job.target)
        activation = None
        if config is not None and config["activation"] == "auto":
            activation = models.activate(conn, job.machine_id, job.target, version,
                                         config["backfill_s"])
        jobs.mark_succeeded(conn, job.id, job.attempts, version)
        events.model_trained(conn, settings, job, version, model, activation)
    return Outcome(job.id, "succeeded", version=version)


def fail(settings: Settings, pool: ConnectionPool, job: ClaimedJob, error: str) -> Outcome:
    with pool.connection() as conn, conn.transaction():
        if not jobs.mark_failed(conn, job.id, job.attempts, error):
            return Outcome(job.id, "lost", error=error)
        events.model_failed(conn, settings, job.machine_id, job.target, job.id, error)
    return Outcome(job.id, "failed", error=error)


def execute(settings: Settings, pool: ConnectionPool, job: ClaimedJob) -> Outcome:
    log.info("training job %s: %s of machine %s (%s, attempt %d)", job.id, job.target,
             job.machine_id, job.trigger, job.attempts)
    started = time.perf_counter()
    try:
        trainer = trainer_for(job.target)
        with heartbeat(settings, pool, job), pool.connection() as conn:
            model = trainer(settings, conn, job)
    except KeyError:
        return fail(settings, pool, job, f"nothing can train target {job.target!r}")
    except (TrainingError, DetectorError) as exc:
        log.info("training job %s failed: %s", job.id, exc)
        return fail(settings, pool, job, str(exc))
    except (psycopg.OperationalError, PoolTimeout):
        raise  # database gone: leave the job running; it is re-queued once stale
    except ClusterUnavailableError as exc:
        # Not the job's fault: back in the queue at once, for whichever worker (or this
        # one, after a pause) reaches the cluster.
        with pool.connection() as conn, conn.transaction():
            jobs.release(conn, job.id, job.attempts, CLUSTER_RELEASED.format(error=exc))
        raise
    except Exception as exc:
        log.exception("training job %s crashed", job.id)
        return fail(settings, pool, job, f"internal error: {type(exc).__name__}: {exc}")
    try:
        outcome = finish(settings, pool, job, model)
    except (psycopg.OperationalError, PoolTimeout):
        raise
    except Exception as exc:  # a bug storing this model must not stop the scheduler
        log.exception("training job %s: storing the model failed", job.id)
        return fail(settings, pool, job, f"internal error storing the model: "
                                         f"{type(exc).__name__}: {exc}")
    log.info("training job %s: %s, version %s, fit %.2fs, total %.2fs", job.id,
             outcome.state, outcome.version, model.fit_seconds, time.perf_counter() - started)
    return outcome


def recover_stale(settings: Settings, pool: ConnectionPool) -> tuple[list[UUID], list[UUID]]:
    """Re-queue (or, past the attempt limit, fail) jobs whose process died."""
    with pool.connection() as conn, conn.transaction():
        requeued = jobs.requeue_stale(conn, settings.train_stale_s,
                                      settings.train_max_attempts, STALE_REQUEUED)
        failed = jobs.fail_stale(conn, settings.train_stale_s, settings.train_max_attempts,
                                 STALE_FAILED.format(n=settings.train_max_attempts))
        for row in failed:
            events.model_failed(conn, settings, row["machine_id"], row["target"], row["id"],
                                row["error"])
    for job_id in requeued:
        log.warning("training job %s %s", job_id, STALE_REQUEUED)
    return requeued, [row["id"] for row in failed]


def run_one(settings: Settings, pool: ConnectionPool) -> Outcome | None:
    """Claim and run the oldest queued job; None when the queue is empty."""
    job = claim(pool)
    return execute(settings, pool, job) if job is not None else None


class Runner:
    """One job-runner thread's loop; `current` lets shutdown release an unfinished job."""

    def __init__(self, settings: Settings, pool: ConnectionPool, stop: threading.Event,
                 wake: threading.Event) -> None:
        self.settings, self.pool, self.stop, self.wake = settings, pool, stop, wake
        self.current: ClaimedJob | None = None

    def run(self) -> None:
        next_recovery = 0.0
        while not self.stop.is_set():
            if time.monotonic() >= next_recovery:
                next_recovery = time.monotonic() + self.settings.train_heartbeat_s
                self._guarded(lambda: recover_stale(self.settings, self.pool))
            self.wake.clear()
            if not self._guarded(self._run_next):
                self.wake.wait(self.settings.scheduler_poll_s)

    def _run_next(self) -> bool:
        job = claim(self.pool)
        if job is None:
            return False
        self.current = job
        try:
            execute(self.settings, self.pool, job)
        finally:
            self.current = None
        return True

    def _guarded(self, step: Any) -> Any:
        try:
            return step()
        except (psycopg.Error, PoolTimeout, ClusterUnavailableError) as exc:
            log.warning("job runner: database or Dask cluster unavailable (%s); retrying",
                        exc)
            self.stop.wait(self.settings.scheduler_poll_s)
            return None

    def release(self) -> UUID | None:
        """Put the job this runner is still training back in the queue (at shutdown);
        returns its id if there was one."""
        job = self.current
        if job is None:
            return None
        with self.pool.connection() as conn, conn.transaction():
            released = jobs.release(conn, job.id, job.attempts, SHUTDOWN_RELEASED)
        return job.id if released else None
