"""Helpers for the embedding-batch tests: deterministic windows and their three encodings."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from ingest.codec import (
    BINARY_TYPE,
    JSON_TYPE,
    NDJSON_TYPE,
    Batch,
    BatchLimits,
    encode_binary,
    parse_batch,
    parse_rfc3339,
    to_rfc3339,
)
from ingest.errors import BatchValidationError

DIM = 8
NOW_US = parse_rfc3339("2026-11-22T12:00:00Z")
LIMITS = BatchLimits(max_windows=20_000, max_past_s=7 * 86400, max_future_s=300)
Window = dict[str, Any]


def windows(n: int = 5, dim: int = DIM, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n windows one second apart ending an hour before NOW_US, with float32 values."""
    rng = np.random.default_rng(seed)
    times = NOW_US - 3_600_000_000 - np.arange(n, dtype=np.int64)[::-1] * 1_000_000
    return times, rng.standard_normal((n, dim)).astype(np.float32)


def as_objects(times: np.ndarray, values: np.ndarray) -> list[Window]:
    # float32 -> Python float is exact and repr round-trips, so JSON loses nothing.
    return [
        {"t": to_rfc3339(int(t)), "v": row.tolist()} for t, row in zip(times, values, strict=True)
    ]


def json_body(objects: list[Any]) -> bytes:
    return json.dumps({"windows": objects}).encode()


def ndjson_body(objects: list[Any]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objects)


TEXT_ENCODINGS: list[tuple[str, Callable[[list[Any]], bytes]]] = [
    (JSON_TYPE, json_body),
    (NDJSON_TYPE, ndjson_body),
]


def parse(body: bytes, content_type: str, dim: int = DIM, limits: BatchLimits = LIMITS) -> Batch:
    return parse_batch(body, content_type, dim=dim, limits=limits, now_us=NOW_US)


def reject(body: bytes, content_type: str, status: int = 422, **kw: Any) -> BatchValidationError:
    with pytest.raises(BatchValidationError) as info:
        parse(body, content_type, **kw)
    assert info.value.status == status
    assert str(info.value) == info.value.detail
    return info.value


def encode_as(content_type: str, times: np.ndarray, values: np.ndarray) -> bytes:
    if content_type == BINARY_TYPE:
        return encode_binary(times, values)
    return dict(TEXT_ENCODINGS)[content_type](as_objects(times, values))
