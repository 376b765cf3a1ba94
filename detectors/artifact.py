"""Serialise fitted detectors to bytes for the database, and load them back.

Blob layout: ``MAGIC`` | header length (8-byte big-endian) | JSON header | pickle payload.
The JSON header (format version, library versions, algorithm, params, threshold, score
statistics and the caller's ``meta``) can be read by :func:`read_header` without
unpickling anything.

Security: the payload is a pickle, and unpickling runs code chosen by whoever wrote the
bytes. A blob is therefore only ever loaded from Earshot's own database, and
:func:`load` verifies its SHA-256 against the checksum recorded at training time *before*
unpickling. The checksum catches corruption and mixed-up rows; it does not make blobs
from anywhere else safe to load (whoever can rewrite a blob can rewrite its checksum),
so never pass ``load`` bytes that did not come from our own database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import platform
import struct
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import numpy as np
import pyod
import sklearn
import torch
from sklearn.utils.validation import check_is_fitted

from .base import BaseDetector
from .errors import ArtifactError

MAGIC = b"EARSHOT-DETECTOR\n"
FORMAT_VERSION = 1
_LENGTH = struct.Struct(">Q")


def library_versions() -> dict[str, str]:
    """Versions of everything whose pickles end up in a blob."""
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "sklearn": sklearn.__version__,
        "pyod": pyod.__version__,
        "torch": torch.__version__,
        # Pickled inside cnn classifiers; read from the metadata so skorch is not imported
        # by every process that only handles detectors.
        "skorch": metadata.version("skorch"),
    }


def _header(detector: BaseDetector, meta: Mapping[str, Any]) -> dict[str, Any]:
    params = detector.get_params(deep=False)
    return {
        "format_version": FORMAT_VERSION,
        "libraries": library_versions(),
        "algorithm": detector.name,
        "params": {k: v for k, v in params.items() if not k.startswith("threshold_")},
        "threshold": {
            "method": detector.threshold_method,
            "method_used": detector.threshold_method_,
            "q": detector.threshold_q,
            "value": detector.threshold_,
        },
        "n_features": detector.n_features_in_,
        "n_train_windows": detector.n_train_windows_,
        "n_holdout_windows": detector.n_holdout_windows_,
        "train_score_stats": detector.train_score_stats_,
        "holdout_score_stats": detector.holdout_score_stats_,
        "fit_seconds": detector.fit_seconds_,
        "meta": dict(meta),
    }


def dump(detector: BaseDetector, meta: Mapping[str, Any]) -> tuple[bytes, str]:
    """Serialise a fitted detector; returns ``(blob, sha256 hex of blob)``.

    ``meta`` (embedding kind, dimension, training range, ...) must be JSON-serialisable.
    """
    check_is_fitted(detector, "threshold_")
    return pack(MAGIC, _header(detector, meta), detector)


def pack(magic: bytes, header: Mapping[str, Any], obj: object) -> tuple[bytes, str]:
    """``magic | header length | JSON header | pickle`` and the blob's SHA-256 hex; the
    container shared by every artifact kind (detectors, classifiers)."""
    try:
        text = json.dumps(dict(header), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"artifact header and meta must be JSON-serialisable: {exc}") from exc
    header_bytes = text.encode("utf-8")
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    blob = b"".join((magic, _LENGTH.pack(len(header_bytes)), header_bytes, payload))
    return blob, hashlib.sha256(blob).hexdigest()


def _as_bytes(blob: object) -> bytes:
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise ArtifactError(f"artifact must be bytes, got {type(blob).__name__}")
    return bytes(blob)


def split_header(blob: bytes, magic: bytes = MAGIC, kind: str = "detector"
           ) -> tuple[dict[str, Any], bytes]:
    data = _as_bytes(blob)
    if not data.startswith(magic):
        raise ArtifactError(f"not an Earshot {kind} artifact (bad magic bytes)")
    start = len(magic) + _LENGTH.size
    if len(data) < start:
        raise ArtifactError("artifact is truncated before its header")
    (length,) = _LENGTH.unpack_from(data, len(magic))
    if start + length > len(data):
        raise ArtifactError("artifact is truncated inside its header")
    try:
        header = json.loads(data[start : start + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"artifact header is corrupt: {exc}") from None
    if not isinstance(header, dict):
        raise ArtifactError("artifact header is not a JSON object")
    return header, data[start + length :]


def read_header(blob: bytes) -> dict[str, Any]:
    """The JSON header of a blob, parsed without unpickling anything."""
    header, _ = split_header(blob)
    return header


def load(blob: bytes, expected_sha256: str) -> tuple[BaseDetector, dict[str, Any]]:
    """Verify, then unpickle a blob; returns ``(detector, header)``.

    Order matters: the SHA-256 is checked first, then the format version, and only then
    is the payload unpickled. Raises :class:`ArtifactError` on any failure.
    """
    header, payload = unpack(blob, expected_sha256, MAGIC, "detector")
    detector = _unpickle(payload, header)
    return detector, header


def unpack(blob: bytes, expected_sha256: str, magic: bytes, kind: str
           ) -> tuple[dict[str, Any], bytes]:
    """Check the SHA-256 first, then the magic and format version: ``(header, payload)``.
    Nothing is unpickled here; :func:`unpickle` does that only after this passed."""
    data = _as_bytes(blob)
    actual = hashlib.sha256(data).hexdigest()
    if not isinstance(expected_sha256, str) or not hmac.compare_digest(
        actual, expected_sha256.strip().lower()
    ):
        raise ArtifactError(
            f"artifact checksum mismatch: expected {expected_sha256!r}, got {actual!r}; "
            "refusing to unpickle"
        )
    header, payload = split_header(data, magic, kind)
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"unsupported {kind} artifact format version {version!r}; this build reads "
            f"version {FORMAT_VERSION}"
        )
    return header, payload


def unpickle(payload: bytes, header: dict[str, Any]) -> object:
    """Unpickle a payload :func:`unpack` verified; any failure is an ArtifactError."""
    try:
        return pickle.loads(payload)
    except Exception as exc:  # any failure here means the payload cannot be used
        raise ArtifactError(
            f"artifact payload could not be unpickled ({type(exc).__name__}: {exc}); it was "
            f"written with {header.get('libraries')}, this process has {library_versions()}"
        ) from exc


def _unpickle(payload: bytes, header: dict[str, Any]) -> BaseDetector:
    detector = unpickle(payload, header)
    if not isinstance(detector, BaseDetector) or detector.name != header.get("algorithm"):
        raise ArtifactError(
            f"artifact payload is not the {header.get('algorithm')!r} detector its header "
            f"describes (got {type(detector).__name__})"
        )
    return detector
