"""The detector the alert-latency benchmark shares across machines: trained here on real
logmel-v1 windows of the BLDC healthy training recordings, chosen by its cost per live
scoring call, and installed as every machine's active model with the training package's
own functions (SQL inserts into `models`: a thousand training jobs would only repeat one
fit a thousand times)."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from uuid import UUID

import numpy as np
import psycopg
import sklearn

from bench.common import load_16k, read_manifest
from detectors import artifact, registry
from detectors.base import BaseDetector
from ingest.features import embed
from service.queries import models as model_queries
from service.training import models as training_models

# Algorithms cheap enough to fit in seconds here; knn and the autoencoder are slower per
# call by construction (neighbour search, torch call overhead).
CANDIDATES = ("pca", "mahalanobis", "gmm", "ecod", "iforest")
MIN_FAULT_FLAGGED = 0.5
CALLS = 200


@dataclass(frozen=True)
class Shared:
    algorithm: str
    blob: bytes
    sha256: str
    threshold: float
    n_train: int
    normal: np.ndarray  # healthy test windows the model does not flag (clear of the rule)
    fault: np.ndarray  # propeller-fault windows the model flags


@dataclass(frozen=True)
class Candidate:
    algorithm: str
    call_ms: float  # one decision_function call on one window (median)
    fault_flagged: float  # share of fault windows over the threshold
    normal_flagged: float  # share of healthy test windows over the threshold
    artifact_kib: float


def bldc_windows(split: str, label: str) -> np.ndarray:
    paths = [r["path"] for r in read_manifest()
             if r["path"].startswith("bldc/") and r["split"] == split and r["label"] == label]
    return np.concatenate([embed(load_16k(p), 16_000) for p in paths]).astype(np.float32)


def _call_ms(detector: BaseDetector, window: np.ndarray) -> float:
    runs = []
    with sklearn.config_context(assume_finite=True):  # as the scorer calls it
        for _ in range(CALLS):
            started = time.perf_counter()
            detector.decision_function(window)
            runs.append(time.perf_counter() - started)
    return statistics.median(runs) * 1000


def compare(train: np.ndarray, normal: np.ndarray, fault: np.ndarray
            ) -> tuple[list[Candidate], dict[str, BaseDetector]]:
    """Every candidate fitted on `train`: its live-call cost and what it flags."""
    found, fitted = [], {}
    for name in CANDIDATES:
        detector = registry.build(name, {}, None).fit(train)
        threshold = float(detector.threshold_)
        blob, _ = artifact.dump(detector, {"embedding_kind": "logmel-v1", "dim": 128})
        found.append(Candidate(
            name, _call_ms(detector, fault[:1]),
            float(np.mean(detector.decision_function(fault) > threshold)),
            float(np.mean(detector.decision_function(normal) > threshold)), len(blob) / 1024))
        fitted[name] = detector
    return found, fitted


def choose() -> tuple[Shared, list[Candidate]]:
    """The cheapest candidate per call that flags at least half of the fault windows."""
    train, normal, fault = (bldc_windows("train", "normal"), bldc_windows("test", "normal"),
                            bldc_windows("test", "anomaly"))
    candidates, fitted = compare(train, normal, fault)
    usable = [c for c in candidates if c.fault_flagged >= MIN_FAULT_FLAGGED]
    best = min(usable or candidates, key=lambda c: c.call_ms)
    detector = fitted[best.algorithm]
    blob, digest = artifact.dump(detector, {"embedding_kind": "logmel-v1", "dim": 128})
    threshold = float(detector.threshold_)
    clear = threshold - 0.1 * abs(threshold)  # the default rule's clear level
    normal_scores = detector.decision_function(normal)
    fault_scores = detector.decision_function(fault)
    return Shared(best.algorithm, blob, digest, threshold, len(train),
                  normal[normal_scores < clear], fault[fault_scores > threshold]), candidates


def install(conn: psycopg.Connection, shared: Shared, machine_ids: list[str]) -> None:
    """Store `shared` as each machine's next detector version and activate it (no
    backfill), in one transaction."""
    with conn.transaction():
        for machine in machine_ids:
            machine_id = UUID(machine)
            model_queries.lock_versions(conn, machine_id, "detector")
            version = model_queries.insert_model(conn, {
                "machine_id": machine_id, "target": "detector", "algorithm": shared.algorithm,
                "params": {}, "threshold": shared.threshold, "threshold_config": {},
                "embedding_kind": "logmel-v1", "dim": 128, "train_start": None,
                "train_end": None, "n_windows": shared.n_train, "score_stats": {},
                "metrics": {}, "fit_seconds": 0.0,
                "library_versions": artifact.library_versions(), "artifact": shared.blob,
                "artifact_sha256": shared.sha256, "job_id": None})
            training_models.activate(conn, machine_id, "detector", version, 0.0)
