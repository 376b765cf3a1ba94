"""Serialise fitted classifiers (scikit-learn pipelines) to bytes and load them back.

The same layout and the same safety rule as :mod:`detectors.artifact`: ``MAGIC`` | header
length (8-byte big-endian) | JSON header | pickle payload, and :func:`load` checks the
SHA-256 recorded at training time *before* unpickling. Only ever load blobs from
Earshot's own database (see :mod:`detectors.artifact` for why a checksum is not a
signature). A different magic keeps a classifier blob from ever being taken for a
detector and vice versa.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .artifact import FORMAT_VERSION, library_versions, pack, split_header, unpack, unpickle
from .errors import ArtifactError

MAGIC = b"EARSHOT-CLASSIFIER\n"


def dump(pipeline: Pipeline, algorithm: str, meta: Mapping[str, Any]) -> tuple[bytes, str]:
    """``(blob, sha256 hex of blob)`` of a fitted pipeline; `meta` must be JSON-able."""
    check_is_fitted(pipeline)
    header = {"format_version": FORMAT_VERSION, "libraries": library_versions(),
              "algorithm": algorithm, "classes": [str(c) for c in pipeline.classes_],
              "meta": dict(meta)}
    return pack(MAGIC, header, pipeline)


def read_header(blob: bytes) -> dict[str, Any]:
    """The JSON header, parsed without unpickling anything."""
    header, _ = split_header(bytes(blob), MAGIC, "classifier")
    return header


def load(blob: bytes, expected_sha256: str) -> tuple[Pipeline, dict[str, Any]]:
    """Verify the digest, then the format, then unpickle: ``(pipeline, header)``."""
    header, payload = unpack(blob, expected_sha256, MAGIC, "classifier")
    pipeline = unpickle(payload, header)
    if not isinstance(pipeline, Pipeline) or \
            [str(c) for c in pipeline.classes_] != header.get("classes"):
        raise ArtifactError("classifier payload is not the pipeline its header describes")
    return pipeline, header
