"""The detector trainer: the machine's config + windows inside its normal-operation ranges
-> a fitted, serialised anomaly detector. Runs in the scheduler process (CPU-heavy).

Sensors: one detector scores one embedding space, so it trains on the embedding kind and
dimension of the machine's oldest sensor; sensors of another kind/dim are left out and
listed in the model's `metrics.excluded_sensors` (and are not scored by this model).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np
import psycopg

from detectors import InsufficientDataError, artifact, registry, validate_threshold
from detectors.base import BaseDetector
from service.queries import model_configs
from service.queries import training_data as data_queries
from service.queries.jobs import ClaimedJob
from service.settings import Settings
from service.training import compute
from service.training import conditions as window_conditions
from service.training.errors import TrainingError
from service.training.targets import TrainedModel, compute_key

SELECT_NOW = "SELECT now()"
# Windows further apart than this belong to different recordings (uploads, sessions), and a
# continuous stream is cut into recordings of at most an hour, so the threshold is
# calibrated on recordings the model never saw (detectors.calibration).
RECORDING_GAP_S = 5.0
RECORDING_MAX_S = 3600.0


def recordings(times: list[datetime]) -> np.ndarray:
    """A recording number per window (windows in time order)."""
    ids = np.zeros(len(times), dtype=np.int64)
    if not times:
        return ids
    current, start, previous = 0, times[0], times[0]
    for i, t in enumerate(times):
        if ((t - previous).total_seconds() > RECORDING_GAP_S
                or (t - start).total_seconds() >= RECORDING_MAX_S):
            current, start = current + 1, t
        ids[i], previous = current, t
    return ids


@dataclass(frozen=True)
class TrainingSet:
    config: dict[str, Any]
    sensors: list[data_queries.SensorInfo]
    excluded: list[dict[str, Any]]
    ranges: list[data_queries.TimeRange]
    since: datetime | None
    windows: data_queries.TrainingWindows
    conditions: np.ndarray | None = None

    def describe(self) -> str:
        ref = self.sensors[0]
        since = f" since {self.since.isoformat()}" if self.since else ""
        return (f"training data: {len(self.windows.times)} windows of {len(self.sensors)} "
                f"sensor(s) ({ref.embedding_kind}, dim {ref.dim}) in {len(self.ranges)} "
                f"baseline range(s){since}")


def load_training_set(conn: psycopg.Connection, settings: Settings, machine_id: UUID,
                      target: str) -> TrainingSet:
    config = model_configs.get_config(conn, machine_id, target)
    if config is None:
        raise TrainingError(f"no {target} is configured for machine {machine_id}: "
                            f"PUT /v1/machines/{machine_id}/{target} first")
    all_sensors = data_queries.machine_sensors(conn, machine_id)
    if not all_sensors:
        raise TrainingError(f"machine {machine_id} has no sensors, so it has no windows")
    ref = all_sensors[0]
    sensors = [s for s in all_sensors if (s.embedding_kind, s.dim) == (ref.embedding_kind,
                                                                       ref.dim)]
    excluded = [{"id": str(s.id), "name": s.name, "embedding_kind": s.embedding_kind,
                 "dim": s.dim, "reason": f"differs from {ref.embedding_kind}/{ref.dim} of "
                                         f"the oldest sensor {ref.name!r}"}
                for s in all_sensors if s not in sensors]
    since = None
    if config["training_window_s"] is not None:
        now = conn.execute(SELECT_NOW).fetchone()
        assert now is not None
        since = now[0] - timedelta(seconds=config["training_window_s"])
    ranges = data_queries.training_ranges(conn, machine_id, since)
    windows = data_queries.training_windows(conn, [s.id for s in sensors], ref.dim, ranges,
                                            settings.train_max_windows)
    return TrainingSet(config, sensors, excluded, ranges, since, windows,
                       window_conditions.for_machine(conn, machine_id, windows.times))


def fit(training: TrainingSet) -> BaseDetector:
    config = training.config
    detector = registry.build(config["algorithm"], config["params"], config["threshold"])
    n = len(training.windows.times)
    try:
        if n == 0:
            # check_array would refuse an empty matrix with a less helpful message.
            raise InsufficientDataError(
                0, detector._required_windows(),
                f"no stored windows inside the machine's baselines; declare normal operation "
                f"with POST /v1/machines/{config['machine_id']}/baselines")
        detector.fit(training.windows.values, conditions=training.conditions,
                     groups=recordings(training.windows.times))
    except InsufficientDataError as exc:
        raise TrainingError(f"{exc} ({training.describe()})") from exc
    return detector


def to_model(training: TrainingSet, detector: BaseDetector,
             max_windows: int) -> TrainedModel:
    config, times = training.config, training.windows.times
    blob, digest = artifact.dump(detector, {
        "machine_id": str(config["machine_id"]), "target": config["target"],
        "embedding_kind": training.sensors[0].embedding_kind, "dim": training.sensors[0].dim,
        "train_start": times[0].isoformat(), "train_end": times[-1].isoformat(),
        "n_windows": len(times)})
    threshold_config = {**validate_threshold(config["threshold"]),
                        "method_used": detector.threshold_method_}
    metrics = {
        "sensors": [str(s.id) for s in training.sensors],
        "excluded_sensors": training.excluded,
        "baseline_ranges": len(training.ranges),
        "training_window_s": config["training_window_s"],
        "capped_at": max_windows if len(times) >= max_windows else None,
        "n_fit_windows": detector.n_train_windows_,
        "n_holdout_windows": detector.n_holdout_windows_,
        "conditions": window_conditions.summary(training.conditions),
        "threshold_basis": {
            "holdout_windows": detector.n_holdout_windows_,
            "holdout_recordings": detector.n_holdout_recordings_,
            "training_recordings": detector.n_train_recordings_,
            "method": detector.threshold_method_,
            "confidence": detector.threshold_confidence_,
        },
    }
    return TrainedModel(
        algorithm=config["algorithm"],
        params=registry.validate_params(config["algorithm"], config["params"]),
        threshold=float(detector.threshold_), threshold_config=threshold_config,
        embedding_kind=training.sensors[0].embedding_kind, dim=training.sensors[0].dim,
        train_start=times[0], train_end=times[-1], n_windows=len(times),
        score_stats={"train": detector.train_score_stats_,
                     "holdout": detector.holdout_score_stats_},
        metrics=metrics, fit_seconds=float(detector.fit_seconds_),
        library_versions=artifact.library_versions(), artifact=blob, artifact_sha256=digest)


def train(settings: Settings, conn: psycopg.Connection, job: ClaimedJob) -> TrainedModel:
    """Read in one short transaction, then fit with no transaction open (here or on the
    Dask cluster)."""
    with conn.transaction():
        training = load_training_set(conn, settings, job.machine_id, job.target)
    return compute.run(fit_model, training, settings.train_max_windows,
                       scheduler=settings.dask_scheduler, key=compute_key(job))


def fit_model(training: TrainingSet, max_windows: int) -> TrainedModel:
    """The CPU-heavy part, pure (no database, no settings): runs in this process or on a
    Dask worker (`service.training.compute`)."""
    return to_model(training, fit(training), max_windows)
