"""Loading and activating model versions.

`load_active` is what the scoring worker calls for every batch, so it reads only the
active row's metadata and unpickles an artifact once per (machine, target, version,
sha256): only after `detectors.artifact.load` has checked the bytes against the stored
digest, so a tampered or corrupted blob is refused instead of executed.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import psycopg

from service.queries import models as model_queries

# Targets whose first activation scores recent history (classifier predictions do not
# backfill).
BACKFILL_TARGETS = frozenset({"detector"})
CACHE_SIZE = 256

CacheKey = tuple[UUID, str, int, str]


@dataclass(frozen=True)
class LoadedModel:
    machine_id: UUID
    target: str
    version: int
    # A fitted estimator: decision_function/predict (detector) or predict_proba (classifier).
    detector: Any = field(repr=False)
    threshold: float
    embedding_kind: str
    dim: int
    algorithm: str
    sha256: str


@dataclass(frozen=True)
class Activation:
    version: int
    first: bool
    backfill: dict[UUID, int]  # windows queued for scoring per sensor


class _Cache:
    """A small LRU of unpickled models; keys carry the digest, so they never go stale."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[CacheKey, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: CacheKey) -> LoadedModel | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: CacheKey, model: LoadedModel) -> None:
        with self._lock:
            # Older versions of the same machine/target are never asked for again.
            for old in [k for k in self._items if k[:2] == key[:2] and k != key]:
                del self._items[old]
            self._items[key] = model
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_cache = _Cache(CACHE_SIZE)


def clear_cache() -> None:
    _cache.clear()


def load_active(conn: psycopg.Connection, machine_id: UUID,
                target: str = "detector") -> LoadedModel | None:
    """The machine's active model, or None. Raises `detectors.ArtifactError` when the
    stored artifact does not match its digest."""
    meta = model_queries.active_meta(conn, machine_id, target)
    if meta is None:
        return None
    key = (machine_id, target, meta.version, meta.artifact_sha256)
    cached = _cache.get(key)
    if cached is not None:
        return cached
    blob = model_queries.artifact(conn, machine_id, target, meta.version)
    if blob is None:  # deleted between the two reads (machine deleted)
        return None
    from detectors import artifact, classifier_artifact  # ML stack: only where used

    # A classifier is a scikit-learn pipeline (predict_proba) and has no threshold.
    estimator = classifier_artifact.load(blob, meta.artifact_sha256)[0] \
        if target == "classifier" else artifact.load(blob, meta.artifact_sha256)[0]
    threshold = float(meta.threshold) if meta.threshold is not None else math.nan
    loaded = LoadedModel(machine_id=machine_id, target=target, version=meta.version,
                         detector=estimator, threshold=threshold,
                         embedding_kind=meta.embedding_kind, dim=meta.dim,
                         algorithm=meta.algorithm, sha256=meta.artifact_sha256)
    _cache.put(key, loaded)
    return loaded


def activate(conn: psycopg.Connection, machine_id: UUID, target: str, version: int,
             backfill_s: float) -> Activation | None:
    """Make `version` the active one (None if it does not exist). The first activation
    ever of a detector queues the last `backfill_s` seconds of windows for scoring."""
    model_queries.lock_versions(conn, machine_id, target)
    first = not model_queries.ever_activated(conn, machine_id, target)
    if not model_queries.activate(conn, machine_id, target, version):
        return None
    backfill: dict[UUID, int] = {}
    if first and target in BACKFILL_TARGETS and backfill_s > 0:
        backfill = model_queries.queue_backfill(conn, machine_id, backfill_s)
    return Activation(version=version, first=first, backfill=backfill)
