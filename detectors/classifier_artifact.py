"""Serialise fitted classifiers (scikit-learn pipelines) to bytes and load them back.

The same layout and the same safety rule as :mod:`detectors.artifact`: ``MAGIC`` | header
length (8-byte big-endian) | JSON header | pickle payload, and :func:`load` checks the
SHA-256 recorded at training time *before* unpickling. Only ever load blobs from
Earshot's own database (see :mod:`detectors.artifact` for why a checksum is not a
signature). A different magic keeps a classifier blob from ever being taken for a
detector and vice versa.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import struct
from collections.abc import Mapping
from typing import Any

from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .artifact import library_versions
from .errors import ArtifactError

MAGIC = b"EARSHOT-CLASSIFIER\n"
FORMAT_VERSION = 1
_LENGTH = struct.Struct(">Q")


def dump(pipeline: Pipeline, algorithm: str, meta: Mapping[str, Any]) -> tuple[bytes, str]:
    """``(blob, sha256 hex of blob)`` of a fitted pipeline; `meta` must be JSON-able."""
    check_is_fitted(pipeline)
    header = {"format_version": FORMAT_VERSION, "libraries": library_versions(),
              "algorithm": algorithm, "classes": [str(c) for c in pipeline.classes_],
              "meta": dict(meta)}
    try:
        header_bytes = json.dumps(header, sort_keys=True, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"classifier artifact meta must be JSON-serialisable: {exc}") from exc
    payload = pickle.dumps(pipeline, protocol=pickle.HIGHEST_PROTOCOL)
    blob = b"".join((MAGIC, _LENGTH.pack(len(header_bytes)), header_bytes, payload))
    return blob, hashlib.sha256(blob).hexdigest()


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    if not data.startswith(MAGIC):
        raise ArtifactError("not an Earshot classifier artifact (bad magic bytes)")
    start = len(MAGIC) + _LENGTH.size
    if len(data) < start:
        raise ArtifactError("classifier artifact is truncated before its header")
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if start + length > len(data):
        raise ArtifactError("classifier artifact is truncated inside its header")
    try:
        header = json.loads(data[start:start + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"classifier artifact header is corrupt: {exc}") from None
    if not isinstance(header, dict):
        raise ArtifactError("classifier artifact header is not a JSON object")
    return header, data[start + length:]


def read_header(blob: bytes) -> dict[str, Any]:
    """The JSON header, parsed without unpickling anything."""
    header, _ = _split(bytes(blob))
    return header


def load(blob: bytes, expected_sha256: str) -> tuple[Pipeline, dict[str, Any]]:
    """Verify the digest, then the format, then unpickle: ``(pipeline, header)``."""
    if not isinstance(blob, bytes | bytearray | memoryview):
        raise ArtifactError(f"artifact must be bytes, got {type(blob).__name__}")
    data = bytes(blob)
    actual = hashlib.sha256(data).hexdigest()
    if not isinstance(expected_sha256, str) or not hmac.compare_digest(
            actual, expected_sha256.strip().lower()):
        raise ArtifactError(f"artifact checksum mismatch: expected {expected_sha256!r}, got "
                            f"{actual!r}; refusing to unpickle")
    header, payload = _split(data)
    if header.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"unsupported classifier artifact format version "
                            f"{header.get('format_version')!r}; this build reads "
                            f"{FORMAT_VERSION}")
    try:
        pipeline = pickle.loads(payload)
    except Exception as exc:  # any failure here means the payload cannot be used
        raise ArtifactError(
            f"classifier payload could not be unpickled ({type(exc).__name__}: {exc}); it "
            f"was written with {header.get('libraries')}, this process has "
            f"{library_versions()}") from exc
    if not isinstance(pipeline, Pipeline) or \
            [str(c) for c in pipeline.classes_] != header.get("classes"):
        raise ArtifactError("classifier payload is not the pipeline its header describes")
    return pipeline, header
