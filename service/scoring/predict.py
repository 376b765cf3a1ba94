"""Classifier predictions inside a scorer iteration: the windows of the batches the scorer
claimed are also run through the machine's active classifier, and the predictions are
stored in the same transaction that stores the scores and retires the batches.

Exactly once per (window, classifier version), like scores: the batch leaves the queue
only with its predictions, `ON CONFLICT DO NOTHING` on (sensor, t, version) absorbs
re-predicted windows, and only rows actually inserted reach event announcements.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
import sklearn

from ingest.store import decode_vectors
from service.classification import notify
from service.classification.audio_clips import sensor_clips
from service.queries import predictions as prediction_queries
from service.queries import scores as q
from service.queries.training_data import window_lengths

log = logging.getLogger("earshot.scoring")
TARGET = "classifier"
PROBABILITY_DIGITS = 6  # jsonb size; far below any threshold's resolution

ClassifierLoader = Callable[[psycopg.Connection, UUID], Any]


def default_loader(conn: psycopg.Connection, machine_id: UUID) -> Any:
    from service.training.models import load_active

    return load_active(conn, machine_id, TARGET)


def usable(batch: q.ClaimedBatch, classifiers: dict[UUID, Any]) -> bool:
    model = classifiers.get(batch.machine_id) if batch.machine_id is not None else None
    if model is None:
        return False
    if (batch.embedding_kind, batch.dim) != (model.embedding_kind, model.dim):
        log.warning("sensor embedding does not match the active classifier; not predicted",
                    extra={"sensor_id": batch.sensor_id, "machine_id": batch.machine_id})
        return False
    return True


@dataclass
class Work:
    model: Any
    keys: dict[tuple[UUID, datetime], bytes] = field(default_factory=dict)


def gather(rows: list[tuple[int, datetime, bytes]], batches: list[q.ClaimedBatch],
           classifiers: dict[UUID, Any]) -> dict[UUID, Work]:
    """Windows per machine with a usable classifier, deduplicated on (sensor, t)."""
    ok = {i for i, b in enumerate(batches) if usable(b, classifiers)}
    work: dict[UUID, Work] = {}
    for index, t, blob in rows:
        if index not in ok:
            continue
        batch = batches[index]
        assert batch.machine_id is not None
        item = work.setdefault(batch.machine_id, Work(classifiers[batch.machine_id]))
        item.keys[(batch.sensor_id, t)] = blob
    return work


def _listens(model: Any) -> bool:
    """Whether the classifier takes the windows' audio (`cnn`), not their embeddings."""
    from detectors import classifiers

    try:
        return classifiers.get_algorithm(model.algorithm).input == "audio"
    except classifiers.UnknownClassifierError:
        return False


def _inputs(conn: psycopg.Connection, item: Work) -> tuple[list[tuple[UUID, datetime]],
                                                           np.ndarray]:
    """(window keys, model input rows): embeddings, or for an audio classifier the held
    audio of each window (windows whose audio is not stored stay unpredicted)."""
    keys = list(item.keys)
    if not _listens(item.model):
        return keys, decode_vectors(list(item.keys.values()), item.model.dim)
    lengths = window_lengths(conn, list({k[0] for k in keys}))
    held: list[tuple[UUID, datetime]] = []
    clips: list[np.ndarray] = []
    for sensor in dict.fromkeys(k[0] for k in keys):
        rows = [k for k in keys if k[0] == sensor]
        found = sensor_clips(conn, sensor, [k[1] for k in rows], lengths.get(sensor, 1.0))
        held += [k for k, ok in zip(rows, found.held, strict=True) if ok]
        clips.append(found.clips[found.held])
    if len(held) < len(keys):
        log.warning("windows without stored audio are not classified",
                    extra={"count": len(keys) - len(held), "version": item.model.version})
    return held, np.concatenate(clips) if clips else np.empty((0, 0), np.float32)


def _rows(conn: psycopg.Connection, machine_id: UUID, item: Work
          ) -> prediction_queries.PredictionRows:
    keys, inputs = _inputs(conn, item)
    pipeline = item.model.detector
    labels = [str(c) for c in pipeline.classes_]
    probs = np.asarray(pipeline.predict_proba(inputs), dtype=np.float64) if keys else \
        np.empty((0, len(labels)))
    best = probs.argmax(axis=1)
    return prediction_queries.PredictionRows(
        machine_id=machine_id, version=item.model.version,
        sensor_ids=[k[0] for k in keys], times=[k[1] for k in keys],
        labels=[labels[i] for i in best], confidences=probs.max(axis=1).tolist(),
        probabilities=[{label: round(float(p), PROBABILITY_DIGITS)
                        for label, p in zip(labels, row, strict=True)} for row in probs])


def store(conn: psycopg.Connection, work: dict[UUID, Work]) -> int:
    """Predict, store and announce events; returns the predictions inserted."""
    total = 0
    for machine_id, item in work.items():
        with sklearn.config_context(assume_finite=True):  # ingest refuses NaN/Inf
            rows = _rows(conn, machine_id, item)
        inserted = prediction_queries.insert(conn, rows)
        notify.on_predicted(conn, machine_id, item.model.version, inserted)
        total += len(inserted)
    return total
