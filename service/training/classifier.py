"""The classifier trainer: the machine's labelled windows -> a cross-validated, fitted,
serialised scikit-learn classifier. Runs in the scheduler process (CPU-heavy), through the
same jobs, versions and activation as the detector (`service.training.runner`).

Sensors: like the detector, one classifier reads one embedding space, so it trains on the
kind and dimension of the machine's oldest sensor and lists the others as excluded.

Cross-validation groups: windows of one label range are one group, so a clip is never on
both sides of a fold. A range longer than `CV_BLOCK_S` is cut into blocks of that length,
so a class labelled as one long range (hours of `running`) still spreads over folds.
Overlapping ranges of one label are merged first; a window inside ranges of two different
labels (possible through audio uploads, which do not check overlaps) is left out and
counted in `metrics.conflicting_windows`.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np
import psycopg

from detectors import classifier_artifact, classifiers
from detectors.artifact import library_versions
from detectors.classifiers import ClassifierDataError
from detectors.events import Event, EventParams, RefEvent, calibrate_timing, detect_events
from service.classification.rules import rule_from_row
from service.queries import event_rules, model_configs
from service.queries import labels as label_queries
from service.queries import training_data as data_queries
from service.queries.jobs import ClaimedJob
from service.settings import Settings
from service.training import classifier_audio, compute, transfer
from service.training.errors import TrainingError
from service.training.targets import TrainedModel, compute_key

TARGET = "classifier"
CV_BLOCK_S = 60.0
SELECT_NOW = "SELECT now()"


@dataclass(frozen=True)
class LabelledSet:
    config: dict[str, Any]
    sensors: list[data_queries.SensorInfo]
    excluded: list[dict[str, Any]]
    label_rows: list[dict[str, Any]]
    times: list[datetime]
    values: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    conflicting: int
    empty_ranges: list[str]
    sensor_ids: list[UUID]  # of each window
    window_s: dict[UUID, float]
    event_params: dict[str, EventParams]
    # Classifiers on audio (`cnn`): clip length and windows left without stored audio.
    audio: dict[str, Any] | None = None
    # The fleet embedding a `cnn` transfers from (service.training.transfer), if any.
    pretrained: Any = None


def _sensors(conn: psycopg.Connection, machine_id: UUID,
             ) -> tuple[list[data_queries.SensorInfo], list[dict[str, Any]]]:
    found = data_queries.machine_sensors(conn, machine_id)
    if not found:
        raise TrainingError(f"machine {machine_id} has no sensors, so it has no windows")
    ref = found[0]
    same = [s for s in found if (s.embedding_kind, s.dim) == (ref.embedding_kind, ref.dim)]
    excluded = [{"id": str(s.id), "name": s.name, "embedding_kind": s.embedding_kind,
                 "dim": s.dim, "reason": f"differs from {ref.embedding_kind}/{ref.dim} of the "
                                         f"oldest sensor {ref.name!r}"}
                for s in found if s not in same]
    return same, excluded


def _since(conn: psycopg.Connection, config: dict[str, Any]) -> datetime | None:
    if config["training_window_s"] is None:
        return None
    now = conn.execute(SELECT_NOW).fetchone()
    assert now is not None
    return now[0] - timedelta(seconds=config["training_window_s"])


def _group_keys(label_rows: list[dict[str, Any]], row_ranges: list[int],
                times: list[datetime]) -> np.ndarray:
    """Group of each window: (label, merged range of that label, CV_BLOCK_S block)."""
    merged: dict[str, list[data_queries.TimeRange]] = {}
    for label in {r["label"] for r in label_rows}:
        merged[label] = data_queries.merge_ranges(
            (r["start_at"], r["end_at"]) for r in label_rows if r["label"] == label)
    keys = []
    for r, t in zip(row_ranges, times, strict=True):
        row = label_rows[r]
        ranges = merged[row["label"]]
        index = bisect.bisect_right([lo for lo, _ in ranges], row["start_at"]) - 1
        block = int(max((t - ranges[index][0]).total_seconds(), 0.0) // CV_BLOCK_S)
        keys.append(f"{row['label']}\x00{index}\x00{block}")
    return np.unique(np.array(keys), return_inverse=True)[1]


def _dedupe(rows: data_queries.LabelledWindows, label_rows: list[dict[str, Any]],
            ) -> tuple[list[int], list[str], int]:
    """Row indices to keep, their labels, and how many windows had contradicting labels."""
    seen: dict[tuple[UUID, datetime], set[str]] = {}
    first: dict[tuple[UUID, datetime], int] = {}
    for i, (sensor_id, t, r) in enumerate(zip(rows.sensor_ids, rows.times, rows.ranges,
                                              strict=True)):
        key = (sensor_id, t)
        seen.setdefault(key, set()).add(label_rows[r]["label"])
        first.setdefault(key, i)
    keep = [i for key, i in first.items() if len(seen[key]) == 1]
    keep.sort()
    return keep, [label_rows[rows.ranges[i]]["label"] for i in keep], \
        sum(1 for found in seen.values() if len(found) > 1)


def load_labelled(conn: psycopg.Connection, settings: Settings, machine_id: UUID,
                  ) -> LabelledSet:
    config = model_configs.get_config(conn, machine_id, TARGET)
    if config is None:
        raise TrainingError(f"no classifier is configured for machine {machine_id}: "
                            f"PUT /v1/machines/{machine_id}/classifier first")
    sensors, excluded = _sensors(conn, machine_id)
    label_rows = label_queries.machine_labels(conn, machine_id, _since(conn, config))
    if not label_rows:
        raise TrainingError(f"machine {machine_id} has no labelled ranges to learn from: "
                            f"POST /v1/machines/{machine_id}/labels (or upload audio with "
                            f"?label=)")
    ranges = [(r["start_at"], r["end_at"]) for r in label_rows]
    rows = data_queries.labelled_windows(conn, [s.id for s in sensors], sensors[0].dim,
                                         ranges, settings.train_max_windows)
    keep, labels, conflicting = _dedupe(rows, label_rows)
    used = set(rows.ranges)
    empty = [str(r["id"]) for i, r in enumerate(label_rows) if i not in used]
    times = [rows.times[i] for i in keep]
    rule = rule_from_row(event_rules.get_rule(conn, machine_id))
    classes = sorted({r["label"] for r in label_rows})
    return LabelledSet(config, sensors, excluded, label_rows, times, rows.values[keep],
                       np.array(labels, dtype=str),
                       _group_keys(label_rows, [rows.ranges[i] for i in keep], times)
                       if keep else np.empty(0, int),
                       conflicting, empty, [rows.sensor_ids[i] for i in keep],
                       data_queries.window_lengths(conn, [s.id for s in sensors]),
                       rule.params_by_label(classes))


def _missing_classes(data: LabelledSet) -> list[str]:
    present = set(data.y.tolist())
    return sorted({r["label"] for r in data.label_rows} - present)


def fit(data: LabelledSet) -> classifiers.FittedClassifier:
    missing = _missing_classes(data)
    if missing:
        raise TrainingError(
            f"label(s) {', '.join(map(repr, missing))} cover no stored windows (their "
            f"ranges hold no data of the machine's {data.sensors[0].embedding_kind} "
            f"sensors, or it was deleted by retention); delete those labels or upload "
            f"their audio")
    try:
        return classifiers.fit(data.config["algorithm"], data.config["params"],
                               data.values, data.y, data.groups, pretrained=data.pretrained)
    except ClassifierDataError as exc:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(Counter(data.y.tolist()).items()))
        raise TrainingError(f"{exc} (labelled windows per class: {counts or 'none'})") from exc


def _sensor_events(data: LabelledSet, proba: np.ndarray, labels: list[str], sensor: UUID,
                   base: float) -> tuple[list[Event], list[RefEvent]]:
    """Events one sensor's out-of-fold probabilities give, and the label ranges with data
    on both sides (a range starting where the data starts says nothing about onsets),
    on a clock shifted by `base` so sensors never mix."""
    rows = [i for i, s in enumerate(data.sensor_ids) if s == sensor]
    rows.sort(key=lambda i: data.times[i])
    secs = np.array([data.times[i].timestamp() for i in rows]) - base
    length = data.window_s.get(sensor, 1.0)
    found = detect_events(secs, proba[rows], labels, data.event_params, window_s=length)
    refs = []
    for r in data.label_rows:
        lo, hi = r["start_at"].timestamp() - base, r["end_at"].timestamp() - base
        before = np.any((secs >= lo - 2 * length) & (secs <= lo - length))
        after = np.any((secs >= hi) & (secs <= hi + length))
        if before and after:
            refs.append((r["label"], lo, hi))
    return found, refs


def event_timing(data: LabelledSet, fitted: classifiers.FittedClassifier,
                 ) -> dict[str, dict[str, float | int]]:
    """Per class, the typical onset/offset error of events detected on out-of-fold
    probabilities with the machine's event parameters (see detectors.events.Timing);
    applied by the events endpoint and the `event.detected` announcements."""
    if fitted.oof_proba is None:
        return {}
    labels = list(fitted.metrics["labels"])
    events: list[Event] = []
    refs: list[RefEvent] = []
    first = min(t.timestamp() for t in data.times)
    for k, sensor in enumerate(dict.fromkeys(data.sensor_ids)):
        found, found_refs = _sensor_events(data, fitted.oof_proba, labels, sensor,
                                           first - k * 1e9)
        events += found
        refs += found_refs
    return {label: t.as_dict() for label, t in calibrate_timing(events, refs).items()}


def to_model(data: LabelledSet, fitted: classifiers.FittedClassifier,
             max_windows: int) -> TrainedModel:
    ref, times = data.sensors[0], data.times
    blob, digest = classifier_artifact.dump(fitted.pipeline, data.config["algorithm"], {
        "machine_id": str(data.config["machine_id"]), "target": TARGET,
        "embedding_kind": ref.embedding_kind, "dim": ref.dim,
        "train_start": times[0].isoformat(), "train_end": times[-1].isoformat(),
        "n_windows": len(times), "input": "audio" if data.audio else "embedding"})
    metrics = {
        **fitted.metrics,
        "classes": fitted.labels,
        "windows_per_class": dict(sorted(Counter(data.y.tolist()).items())),
        "sensors": [str(s.id) for s in data.sensors], "excluded_sensors": data.excluded,
        "label_ranges": len(data.label_rows), "empty_label_ranges": data.empty_ranges[:100],
        "conflicting_windows": data.conflicting, "cv_block_s": CV_BLOCK_S,
        "event_timing": event_timing(data, fitted),
        "training_window_s": data.config["training_window_s"],
        "capped_at": max_windows if len(times) >= max_windows else None,
        "audio": data.audio,
        "transfer": transfer.summary(data.config["params"], data.pretrained),
        # Networks averaged per prediction: cv folds + 1 with the fold ensemble, else 1.
        "predicting_models": int(getattr(fitted.pipeline[-1], "n_members_", 1)),
    }
    return TrainedModel(
        algorithm=data.config["algorithm"],
        params=classifiers.validate_params(data.config["algorithm"], data.config["params"]),
        threshold=None, threshold_config={}, embedding_kind=ref.embedding_kind, dim=ref.dim,
        train_start=times[0], train_end=times[-1], n_windows=len(times), score_stats={},
        metrics=metrics, fit_seconds=fitted.fit_seconds, library_versions=library_versions(),
        artifact=blob, artifact_sha256=digest)


def train(settings: Settings, conn: psycopg.Connection, job: ClaimedJob) -> TrainedModel:
    """Read in one short transaction, then cross-validate and fit with none open (here or
    on the Dask cluster)."""
    with conn.transaction():
        data = load_labelled(conn, settings, job.machine_id)
        if classifier_audio.needs_audio(data.config["algorithm"]):
            data = classifier_audio.with_audio(conn, data)
            data = replace(data, pretrained=transfer.pretrained_for(conn, data.config["params"]))
    return compute.run(fit_model, data, settings.train_max_windows,
                       scheduler=settings.dask_scheduler, key=compute_key(job))


def fit_model(data: LabelledSet, max_windows: int) -> TrainedModel:
    """The CPU-heavy part, pure (no database, no settings): runs in this process or on a
    Dask worker (`service.training.compute`)."""
    return to_model(data, fit(data), max_windows)
