"""`codec_group.parse_json_group` gives, body for body, what `parse_batch` gives: the same
arrays for a valid body, the same error (class, status, detail, window) for an invalid one,
whatever else is in the group."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.codec import JSON_TYPE, Batch, BatchLimits, parse_batch, to_rfc3339
from ingest.codec_group import parse_json_group
from ingest.errors import IngestError
from tests.ingest.batches import DIM, LIMITS, NOW_US, as_objects, json_body, windows

SMALL = BatchLimits(max_windows=4, max_past_s=7 * 86400, max_future_s=300)


def one_by_one(body: bytes, dim: int, limits: BatchLimits) -> Batch | IngestError:
    try:
        return parse_batch(body, JSON_TYPE, dim=dim, limits=limits, now_us=NOW_US)
    except IngestError as exc:
        return exc


def assert_same(got: Batch | IngestError, want: Batch | IngestError) -> None:
    assert type(got) is type(want)
    if isinstance(want, IngestError):
        assert isinstance(got, IngestError)
        assert (got.status, got.detail, got.window) == (want.status, want.detail, want.window)
    else:
        assert isinstance(got, Batch)
        assert got.times_us.dtype == want.times_us.dtype == np.int64
        assert got.values.dtype == want.values.dtype == np.float32
        np.testing.assert_array_equal(got.times_us, want.times_us)
        np.testing.assert_array_equal(got.values, want.values)
        assert got.condition == want.condition


def check_group(bodies: list[tuple[bytes, int]], limits: BatchLimits = LIMITS) -> None:
    got = parse_json_group(bodies, limits, NOW_US)
    assert len(got) == len(bodies)
    for (body, dim), result in zip(bodies, got, strict=True):
        assert_same(result, one_by_one(body, dim, limits))


def valid(n: int, seed: int, dim: int = DIM) -> bytes:
    return json_body(as_objects(*windows(n, dim, seed)))


def with_window(index: int, change: dict[str, Any], n: int = 3) -> bytes:
    objects = as_objects(*windows(n, DIM, index))
    objects[index].update(change)
    return json.dumps({"windows": objects}).encode()


HOUR_AGO = to_rfc3339(NOW_US - 3_600_000_000)
INVALID = [
    b"{not json", b"[]", b'{"windows": []}', b'{"windows": {}}', b'{"other": 1}',
    b'{"windows": [1, 2]}', b'{"windows": [{"t": "2026-11-22T11:00:00Z"}]}',
    with_window(1, {"v": [1.0] * (DIM - 1)}), with_window(2, {"v": ["x"] * DIM}),
    with_window(0, {"t": "yesterday"}), with_window(1, {"t": "2026-11-22T11:00:00"}),
    with_window(1, {"t": 1700000000}), with_window(2, {"t": "1960-01-01T00:00:00Z"}),
    with_window(0, {"t": "2026-01-01T00:00:00Z"}), with_window(2, {"t": "2027-01-01T00:00:00Z"}),
    with_window(0, {"t": HOUR_AGO}, n=2), with_window(1, {"v": [10 ** 40] * DIM}),
    with_window(0, {"v": [1e39] * DIM}),
    b'{"windows": [{"t": "' + HOUR_AGO.encode() + b'", "v": [NaN' + b", 0" * (DIM - 1) + b"]}]}",
    valid(5, 3),  # over SMALL's 4 windows
]


def test_a_group_of_valid_bodies_parses_as_each_alone() -> None:
    check_group([(valid(n, seed), DIM) for seed, n in enumerate([1, 1, 2, 4, 1, 3])])


def test_every_invalid_body_gets_its_own_error_and_spares_the_rest() -> None:
    bodies = [(b, DIM) for b in INVALID]
    mixed = [item for pair in zip(bodies, [(valid(2, s), DIM) for s in range(len(bodies))],
                                  strict=True) for item in pair]
    check_group(mixed, SMALL)
    got = parse_json_group(mixed, SMALL, NOW_US)
    assert sum(isinstance(r, Batch) for r in got) == len(INVALID)  # the valid half
    assert all(isinstance(r, IngestError) for r in got[::2])


def with_condition(condition: object, n: int, seed: int) -> bytes:
    return json.dumps({"condition": condition,
                       "windows": as_objects(*windows(n, DIM, seed))}).encode()


def test_operating_conditions_are_kept_and_checked_body_by_body() -> None:
    group = [(with_condition("1800rpm", 2, 1), DIM), (valid(1, 2), DIM),
             (with_condition(1800, 1, 3), DIM), (with_condition("a\x00", 1, 4), DIM),
             (with_condition("fast", 3, 5), DIM)]
    check_group(group)
    got = parse_json_group(group, LIMITS, NOW_US)
    assert [r.condition if isinstance(r, Batch) else "error" for r in got] == [
        "1800rpm", None, "error", "error", "fast"]


def test_bodies_of_several_dims_are_checked_against_their_own() -> None:
    check_group([(valid(2, 1, dim=4), 4), (valid(1, 2, dim=DIM), DIM), (valid(3, 3, dim=4), 4),
                 (valid(1, 4, dim=4), DIM)])


def test_an_empty_group_is_empty() -> None:
    assert parse_json_group([], LIMITS, NOW_US) == []


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, int]:
    """Small JSON bodies near the edges: times in and out of range and repeated, values
    finite, huge or non-finite, now and then a wrong length."""
    dim = draw(st.sampled_from([1, 3, DIM]))
    n = draw(st.integers(1, 5))
    offsets_s = draw(st.lists(st.sampled_from([-10 * 86400, -3600, -2, -1, 0, 200, 400]),
                              min_size=n, max_size=n))
    numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=64),
                        st.integers(-(10 ** 40), 10 ** 40))
    rows = [draw(st.lists(numbers, min_size=dim, max_size=dim + draw(st.integers(0, 1))))
            for _ in range(n)]
    objects = [{"t": to_rfc3339(NOW_US + s * 1_000_000), "v": v}
               for s, v in zip(offsets_s, rows, strict=True)]
    return json.dumps({"windows": objects}).encode(), dim


@settings(max_examples=150, deadline=None)
@given(st.lists(bodies(), min_size=1, max_size=6))
def test_any_group_parses_as_its_bodies_alone(group: list[tuple[bytes, int]]) -> None:
    check_group(group, SMALL)
