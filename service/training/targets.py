"""What a training job can build: target name -> trainer.

A trainer is `train(settings, conn, job) -> TrainedModel`: it reads its data in its own
short transaction(s) on `conn`, fits outside any transaction, and returns the model row;
the runner stores it, allocates the version and finishes the job in one transaction.
Named as "module:function" so the API can list targets without importing the ML stack.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from service.queries.jobs import ClaimedJob
from service.settings import Settings

TRAINERS: dict[str, str] = {
    "detector": "service.training.detector:train",
    "classifier": "service.training.classifier:train",
}
DEFAULT_TARGET = "detector"


@dataclass(frozen=True)
class TrainedModel:
    """One `models` row as a trainer produced it (version and activation come later)."""

    algorithm: str
    params: dict[str, Any]
    threshold: float | None
    threshold_config: dict[str, Any]
    embedding_kind: str
    dim: int
    train_start: datetime | None
    train_end: datetime | None
    n_windows: int
    score_stats: dict[str, Any]
    metrics: dict[str, Any]
    fit_seconds: float
    library_versions: dict[str, str]
    artifact: bytes
    artifact_sha256: str


Trainer = Callable[[Settings, psycopg.Connection, ClaimedJob], TrainedModel]


def trainer_for(target: str) -> Trainer:
    """The trainer of `target`; KeyError for targets nobody registered."""
    module_name, _, function = TRAINERS[target].partition(":")
    trainer: Trainer = getattr(importlib.import_module(module_name), function)
    return trainer


def compute_key(job: ClaimedJob) -> str:
    """The Dask task key of one attempt of a job."""
    return f"earshot-train-{job.target}-{job.id}-attempt-{job.attempts}"
