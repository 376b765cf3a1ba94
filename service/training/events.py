"""`model.trained` / `model.failed` webhook payloads, queued in the transaction that
changes the job's state (so an event exists exactly when the state change committed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from service.alerting import hooks
from service.queries.jobs import ClaimedJob
from service.settings import Settings
from service.training.models import Activation
from service.training.targets import TrainedModel

MODEL_TRAINED = "model.trained"
MODEL_FAILED = "model.failed"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _link(settings: Settings, path: str) -> str:
    return (settings.public_url.rstrip("/") + path) if settings.public_url else path


def model_trained(conn: psycopg.Connection, settings: Settings, job: ClaimedJob,
                  version: int, model: TrainedModel, activation: Activation | None) -> None:
    machine = f"/v1/machines/{job.machine_id}"
    data: dict[str, Any] = {
        "machine_id": str(job.machine_id), "target": job.target, "version": version,
        "algorithm": model.algorithm, "params": model.params, "threshold": model.threshold,
        "embedding_kind": model.embedding_kind, "dim": model.dim,
        "train_start": _iso(model.train_start), "train_end": _iso(model.train_end),
        "n_windows": model.n_windows, "fit_seconds": model.fit_seconds,
        "score_stats": model.score_stats, "artifact_sha256": model.artifact_sha256,
        "active": activation is not None, "job_id": str(job.id), "trigger": job.trigger,
        "slot": _iso(job.slot),
        "links": {"model": _link(settings, f"{machine}/models/{version}?target={job.target}"),
                  "models": _link(settings, f"{machine}/models?target={job.target}"),
                  "job": _link(settings, f"/v1/jobs/{job.id}")},
    }
    hooks.emit_event(conn, MODEL_TRAINED, data, job.machine_id)


def model_failed(conn: psycopg.Connection, settings: Settings, machine_id: UUID, target: str,
                 job_id: UUID, error: str | None) -> None:
    data = {"machine_id": str(machine_id), "target": target, "job_id": str(job_id),
            "error": error, "links": {"job": _link(settings, f"/v1/jobs/{job_id}")}}
    hooks.emit_event(conn, MODEL_FAILED, data, machine_id)
