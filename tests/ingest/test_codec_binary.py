"""The binary batch encoding: its documented layout, zero-copy parsing, rejections, speed."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable

import numpy as np
import pytest

from ingest.codec import BINARY_TYPE, encode_binary
from tests.ingest.batches import DIM, NOW_US, parse, reject, windows


def test_binary_layout_is_the_documented_one() -> None:
    times, values = windows(3)
    body = encode_binary(times, values)
    assert body[:16] == struct.pack("<4sHHII", b"ESW1", 1, 1, DIM, 3)
    assert len(body) == 16 + 3 * (8 + 4 * DIM)
    assert body[16:40] == times.astype("<i8").tobytes()
    assert body[40:] == values.astype("<f4").tobytes()
    # Built by hand, without encode_binary, the parser reads the same windows.
    by_hand = struct.pack("<4sHHII", b"ESW1", 1, 1, DIM, 3) + times.tobytes() + values.tobytes()
    np.testing.assert_array_equal(parse(by_hand, BINARY_TYPE).values, values)


def test_binary_values_are_views_of_the_body_not_copies() -> None:
    body = encode_binary(*windows(4))
    batch = parse(body, BINARY_TYPE)
    raw = np.frombuffer(body, dtype=np.uint8)
    assert np.shares_memory(batch.values, raw) and np.shares_memory(batch.times_us, raw)


def test_encode_binary_rejects_mismatched_arrays() -> None:
    times, values = windows(3)
    with pytest.raises(ValueError, match="values"):
        encode_binary(times[:2], values)


def header(
    magic: bytes = b"ESW1", version: int = 1, dtype: int = 1, dim: int = DIM, count: int = 2
) -> bytes:
    return struct.pack("<4sHHII", magic, version, dtype, dim, count)


@pytest.mark.parametrize(
    ("mutate", "status", "expected"),
    [
        (lambda b: b[:10], 400, "shorter than the 16-byte header"),
        (lambda b: header(magic=b"ESW2") + b[16:], 400, "bad magic"),
        (lambda b: header(version=2) + b[16:], 400, "unsupported version 2"),
        (lambda b: header(dtype=2) + b[16:], 400, "unsupported dtype 2"),
        (lambda b: header(dim=16, count=1) + b[16:], 422, "dim is 16"),
        (lambda b: b[:-1], 400, "truncated"),
        (lambda b: header(count=3) + b[16:], 400, "truncated"),
        (lambda b: b + b"\0", 400, "trailing bytes"),
    ],
    ids=["short header", "magic", "version", "dtype", "dim", "cut", "count", "trailing"],
)
def test_malformed_binary_batches(
    mutate: Callable[[bytes], bytes], status: int, expected: str
) -> None:
    body = mutate(encode_binary(*windows(2)))
    assert expected in reject(body, BINARY_TYPE, status=status).detail


@pytest.mark.parametrize(
    ("breaker", "expected"),
    [
        (lambda t, v: v.__setitem__((3, 1), np.nan), "window 3: v[1] is nan"),
        (lambda t, v: v.__setitem__((3, 7), np.inf), "window 3: v[7] is inf"),
        (lambda t, v: t.__setitem__(3, -5), "before 1970"),
        (lambda t, v: t.__setitem__(3, NOW_US + 301_000_000), "after the server time"),
        (lambda t, v: t.__setitem__(3, NOW_US - 8 * 86400 * 1_000_000), "before the server time"),
        (lambda t, v: t.__setitem__(3, np.iinfo(np.int64).max), "µs since the epoch"),
        (lambda t, v: t.__setitem__(3, t[1]), "repeats window 1"),
    ],
    ids=["nan", "inf", "before 1970", "future", "past", "int64 max", "duplicate"],
)
def test_bad_binary_windows_name_the_first_one(
    breaker: Callable[[np.ndarray, np.ndarray], None], expected: str
) -> None:
    times, values = windows(6)
    breaker(times, values)
    values[5, 0] = np.nan  # a later problem must not mask the earlier one
    error = reject(encode_binary(times, values), BINARY_TYPE)
    assert error.window == 3 and expected in error.detail


def test_ten_thousand_binary_windows_parse_at_numpy_speed() -> None:
    times, values = windows(10_000, dim=128)
    body = encode_binary(times, values)
    parse(body, BINARY_TYPE, dim=128)
    start = time.perf_counter()
    batch = parse(body, BINARY_TYPE, dim=128)
    elapsed = time.perf_counter() - start
    print(
        f"binary: 10000 x 128 windows ({len(body) / 1e6:.1f} MB) parsed in {elapsed * 1000:.2f} ms"
    )
    assert len(batch) == 10_000
    assert elapsed < 0.5
