"""One scoring iteration: claim queued ingest batches, score their windows with each
machine's active detector (and predict their classes with its active classifier, see
`service.scoring.predict`), store the scores once per (window, model version), evaluate
alert rules, and retire the batches, all in one transaction.

Exactly once: a batch row leaves the queue only in the transaction that stored its scores,
and `ON CONFLICT DO NOTHING` on (sensor, t, model version) makes re-scoring a window (a
retried ingest batch, overlapping batches, a second scorer) store nothing twice; only the
rows an iteration actually inserted reach the alert hook. The queue itself is the
persisted watermark, so a restart resumes where the last commit left off.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import numpy as np
import psycopg
import sklearn

from ingest.store import decode_vectors
from service.alerting import hooks
from service.queries import scores as q
from service.scoring import copy, predict
from service.scoring.model_cache import MachineModels

log = logging.getLogger("earshot.scoring")
_ONE_US = timedelta(microseconds=1)


class ActiveModel(Protocol):
    """What the scorer needs of `service.training.models.LoadedModel`."""

    @property
    def version(self) -> int: ...
    @property
    def threshold(self) -> float: ...
    @property
    def embedding_kind(self) -> str: ...
    @property
    def dim(self) -> int: ...
    @property
    def detector(self) -> Any: ...  # fitted: decision_function(X) -> scores


ModelLoader = Callable[[psycopg.Connection, UUID], ActiveModel | None]


def default_loader(conn: psycopg.Connection, machine_id: UUID) -> ActiveModel | None:
    from service.training.models import load_active

    loaded: ActiveModel | None = load_active(conn, machine_id)
    return loaded


@dataclass
class StepResult:
    claimed: int = 0
    windows: int = 0
    inserted: int = 0
    more: bool = False
    predicted: int = 0


@dataclass
class _Work:
    """Windows of one machine gathered from its batches, deduplicated on (sensor, t)."""

    model: ActiveModel
    keys: dict[tuple[UUID, datetime], bytes] = field(default_factory=dict)


class Scorer:
    def __init__(self, chunk_windows: int = 5000, claim_rows: int = 5000,
                 loader: ModelLoader = default_loader,
                 classifier_loader: predict.ClassifierLoader = predict.default_loader,
                 model_cache: int = 2000) -> None:
        self.chunk_windows = chunk_windows
        self.claim_rows = claim_rows
        self._models = MachineModels("detector", loader, lambda b: b.active_version,
                                     model_cache)
        self._mean_batch = 0.0  # windows per claimed batch, smoothed
        self._classifiers = MachineModels("classifier", classifier_loader,
                                          lambda b: b.classifier_version, model_cache)

    def step(self, conn: psycopg.Connection) -> StepResult:
        """Run one iteration in its own transaction on `conn`."""
        with conn.transaction():
            limit = self._claim_limit()
            locked = q.claim_batches(conn, limit)
            claimed = in_order(conn, locked)
            if not claimed:
                return StepResult()
            self._learn_batch_size(claimed)
            models = self._models.for_batches(conn, claimed)
            classifiers = self._classifiers.for_batches(conn, claimed)
            usable = [b for b in claimed
                      if _usable(b, models) or predict.usable(b, classifiers)]
            usable_ids = {b.id for b in usable}
            # Nothing can score these (no active model, deleted sensor, wrong embedding).
            retired = [b.id for b in claimed if b.id not in usable_ids]
            batches, limits = _within_budget(usable, self.chunk_windows)
            rows = q.read_batch_windows(conn, batches, limits)
            work, shrunk = _gather(rows, batches, limits, models)
            # Predictions first: the alert engine reads the operating state they set.
            predicted = predict.store(conn, predict.gather(rows, batches, classifiers))
            inserted = _store_and_alert(conn, work)
            shrunk_ids = {s.id for s in shrunk}
            q.finish_batches(conn, retired + [b.id for b in batches if b.id not in shrunk_ids],
                             shrunk)
        more = len(batches) < len(usable) or len(locked) == limit or bool(shrunk)
        return StepResult(claimed=len(claimed), windows=len(rows), inserted=inserted,
                          more=more, predicted=predicted)

    def _claim_limit(self) -> int:
        """Batch rows to lock: about one chunk's worth (plus one, to see that more wait).
        Locking more than a chunk can use would hold them from other workers until this
        transaction commits, so several workers would take turns instead of sharing."""
        if self._mean_batch <= 0:
            return self.claim_rows
        wanted = math.ceil(self.chunk_windows / self._mean_batch) + 1
        return max(1, min(self.claim_rows, wanted))

    def _learn_batch_size(self, claimed: list[q.ClaimedBatch]) -> None:
        mean = sum(max(b.n, 1) for b in claimed) / len(claimed)
        self._mean_batch = mean if self._mean_batch <= 0 else 0.8 * self._mean_batch + 0.2 * mean


def in_order(conn: psycopg.Connection, claimed: list[q.ClaimedBatch]) -> list[q.ClaimedBatch]:
    """The claimed batches without those of a sensor whose older batch another scorer
    holds: they stay queued for after it. One sensor's windows then reach the alert
    engine in time order, which skips a window older than one it already evaluated (a
    burst of small batches split across two workers would otherwise lose its flags)."""
    if not claimed:
        return claimed
    oldest = q.oldest_unclaimed(conn, sorted({b.sensor_id for b in claimed}),
                                [b.id for b in claimed])
    return [b for b in claimed if oldest.get(b.sensor_id, b.id + 1) > b.id]


def _within_budget(claimed: list[q.ClaimedBatch],
                   budget: int) -> tuple[list[q.ClaimedBatch], list[int]]:
    """The oldest batches that fit in `budget` windows, each with the most windows it may
    contribute this iteration (the last one may be cut short and finish later)."""
    chosen: list[q.ClaimedBatch] = []
    limits: list[int] = []
    used = 0
    for batch in claimed:
        if used >= budget:
            break
        limit = budget - used
        chosen.append(batch)
        limits.append(limit)
        used += min(max(batch.n, 1), limit)
    return chosen, limits


def _usable(batch: q.ClaimedBatch, models: dict[UUID, ActiveModel], warn: bool = True) -> bool:
    if batch.machine_id is None or batch.machine_id not in models:
        return False  # deleted sensor, or no active model: nothing to score
    model = models[batch.machine_id]
    if (batch.embedding_kind, batch.dim) != (model.embedding_kind, model.dim):
        if not warn:
            return False
        log.warning("sensor embedding does not match the active detector; batch not scored",
                    extra={"sensor_id": batch.sensor_id, "machine_id": batch.machine_id,
                           "sensor_kind": batch.embedding_kind, "model_kind": model.embedding_kind})
        return False
    return True


def _gather(rows: list[tuple[int, datetime, bytes]], batches: list[q.ClaimedBatch],
            limits: list[int], models: dict[UUID, ActiveModel],
            ) -> tuple[dict[UUID, _Work], list[q.ShrunkBatch]]:
    work: dict[UUID, _Work] = {}
    per_batch: dict[int, list[datetime]] = defaultdict(list)
    scorable = {i for i, b in enumerate(batches) if _usable(b, models, warn=False)}
    for index, t, blob in rows:
        batch = batches[index]
        per_batch[index].append(t)
        if index not in scorable:  # only the machine's classifier reads these windows
            continue
        assert batch.machine_id is not None
        item = work.get(batch.machine_id)
        if item is None:
            item = work[batch.machine_id] = _Work(models[batch.machine_id])
        item.keys[(batch.sensor_id, t)] = blob
    shrunk = [q.ShrunkBatch(batches[i].id, times[-1] + _ONE_US, len(times))
              for i, times in per_batch.items() if len(times) >= limits[i]]
    return work, shrunk


def _store_and_alert(conn: psycopg.Connection, work: dict[UUID, _Work]) -> int:
    # Ingest rejects NaN/Inf, so sklearn's per-call finiteness scan is pure overhead: it
    # was over half the cost of scoring one window with PCA/GMM (measured), and live
    # scoring is one small call per machine. Thread-local, so only this thread is affected.
    with sklearn.config_context(assume_finite=True):
        blocks = [_score_block(machine_id, item) for machine_id, item in work.items()]
    if not blocks:
        return 0
    inserted = q.insert_scores(conn, copy.payload(blocks))
    groups: dict[tuple[UUID, int], list[hooks.ScoredWindow]] = defaultdict(list)
    for machine_id, version, t, sensor_id, score, threshold, anomalous in inserted:
        groups[(machine_id, version)].append(
            hooks.ScoredWindow(t=t, sensor_id=sensor_id, score=score, threshold=threshold,
                               anomalous=anomalous))
    for (machine_id, version), windows in groups.items():
        hooks.on_scored(conn, machine_id, version, windows)
    return len(inserted)


def _score_block(machine_id: UUID, item: _Work) -> bytes:
    keys = list(item.keys)
    vectors = decode_vectors(list(item.keys.values()), item.model.dim)
    scores = np.asarray(item.model.detector.decision_function(vectors), dtype=np.float64)
    anomalous = scores > item.model.threshold
    return copy.score_rows(machine_id, [k[0] for k in keys], [k[1] for k in keys],
                           item.model.version, scores, float(item.model.threshold), anomalous)
