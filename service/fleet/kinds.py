"""Embedding kinds the server computes from audio: the built-in ones (`ingest.features`)
and the learned `fleet-v<N>` (version N's weights from `fleet_embeddings`).

Each process keeps the versions it loaded (a few hundred kB each), keyed by the artifact's
SHA-256 (looked up per call, a one-row query): a version never changes once stored, and a
process pointed at another database (or a restored one) never uses a stale model. The
artifact's SHA-256 is checked before loading, and loading is torch's `weights_only` (no
code runs).
"""

from __future__ import annotations

import hashlib
import threading
from contextlib import nullcontext
from typing import Any

import numpy as np
import psycopg
from psycopg_pool import ConnectionPool

from ingest import features
from service.errors import UnprocessableError
from service.queries import fleet_embeddings as q

_lock = threading.Lock()
_loaded: dict[str, Any] = {}  # artifact sha256 -> detectors.fleet_embedding.WaveformEmbedder


class UnknownFleetVersionError(UnprocessableError):
    """A `fleet-v<N>` kind whose version was never trained (or failed)."""


def _connection(source: ConnectionPool | psycopg.Connection) -> Any:
    return source.connection() if isinstance(source, ConnectionPool) else nullcontext(source)


def require_version(conn: psycopg.Connection, kind: str) -> None:
    """UnknownFleetVersionError unless `kind` is built-in or a trained fleet version."""
    version = features.fleet_version(kind)
    if version is not None and q.get_version(conn, version) is None:
        latest = q.latest_version(conn)
        raise UnknownFleetVersionError(
            f"embedding kind {kind!r} names fleet embedding version {version}, which has "
            "not been trained; " + (f"the newest is fleet-v{latest}" if latest else
                                    "train one with POST /v1/fleet/embedding/train"))


def embedder(source: ConnectionPool | psycopg.Connection, version: int) -> Any:
    """The loaded module of `version` (from the cache or the database)."""
    with _connection(source) as conn:
        digest = q.artifact_sha256(conn, version)
        with _lock:
            module = _loaded.get(digest) if digest is not None else None
        found = q.artifact(conn, version) if module is None else None
    if module is not None:
        return module
    from detectors import fleet_embedding

    if found is None:
        raise UnknownFleetVersionError(f"fleet embedding version {version} does not exist")
    blob, digest = found
    if hashlib.sha256(blob).hexdigest() != digest:
        raise RuntimeError(f"fleet embedding version {version}: artifact checksum mismatch")
    module = fleet_embedding.load(blob)
    with _lock:
        return _loaded.setdefault(digest, module)


def embed(source: ConnectionPool | psycopg.Connection, samples: np.ndarray, sr: int,
          kind: str) -> np.ndarray:
    """Vectors of a whole clip in `kind`, window k starting k * hop_s after its start."""
    version = features.fleet_version(kind)
    if version is None:
        return features.embed(samples, sr, kind)
    from detectors import fleet_embedding

    return fleet_embedding.embed(embedder(source, version), features.windows_16k(samples, sr))
