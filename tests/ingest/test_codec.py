"""Embedding batches in JSON and NDJSON, content types, timestamps, and every rejection."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from ingest.codec import (
    BINARY_TYPE,
    JSON_TYPE,
    NDJSON_TYPE,
    BatchLimits,
    encode_binary,
    parse_rfc3339,
    to_rfc3339,
)
from ingest.errors import BatchValidationError, PayloadTooLargeError, UnsupportedMediaTypeError
from ingest.store import CONDITION_MERGE_GAP_S, ConditionSpan, merge_spans
from tests.ingest.batches import (
    DIM,
    LIMITS,
    TEXT_ENCODINGS,
    Window,
    as_objects,
    encode_as,
    json_body,
    ndjson_body,
    parse,
    reject,
    windows,
)


def test_all_three_encodings_round_trip_identically() -> None:
    times, values = windows(50)
    bodies = {
        JSON_TYPE: json_body(as_objects(times, values)),
        NDJSON_TYPE: ndjson_body(as_objects(times, values)),
        BINARY_TYPE: encode_binary(times, values),
    }
    for content_type, body in bodies.items():
        batch = parse(body, content_type)
        assert batch.times_us.dtype == np.int64 and batch.values.dtype == np.float32
        np.testing.assert_array_equal(batch.times_us, times)
        np.testing.assert_array_equal(batch.values, values)
        assert len(batch) == 50


@pytest.mark.parametrize(
    "content_type",
    ["application/json; charset=utf-8", "Application/JSON", " application/json ;charset=UTF-8"],
)
def test_content_type_parameters_and_case_are_accepted(content_type: str) -> None:
    times, values = windows(2)
    assert len(parse(json_body(as_objects(times, values)), content_type)) == 2


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/xml", "", "application/octet-stream"]
)
def test_unknown_content_types_list_the_supported_ones(content_type: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError) as info:
        parse(b"{}", content_type)
    assert info.value.status == 415
    for supported in (JSON_TYPE, NDJSON_TYPE, BINARY_TYPE):
        assert supported in info.value.detail


def test_rfc3339_conversions() -> None:
    assert parse_rfc3339("1970-01-01T00:00:00Z") == 0
    assert parse_rfc3339("2026-11-22T15:30:00+05:30") == parse_rfc3339("2026-11-22T10:00:00Z")
    assert (
        parse_rfc3339("2026-11-22t10:00:00.5z") == parse_rfc3339("2026-11-22T10:00:00Z") + 500_000
    )
    assert parse_rfc3339("2026-11-22T10:00:00.123456789Z") % 1_000_000 == 123456  # truncated
    assert to_rfc3339(parse_rfc3339("2026-11-22T10:00:00Z")) == "2026-11-22T10:00:00Z"
    assert to_rfc3339(1_500_000) == "1970-01-01T00:00:01.500000Z"
    assert to_rfc3339(-1) == "1969-12-31T23:59:59.999999Z"


# Each case breaks window 2 of five good ones; expected substring of the message.
BAD_WINDOWS: dict[str, tuple[Callable[[Window], Any], str]] = {
    "not an object": (lambda w: [w["t"], w["v"]], "expected an object"),
    "missing t": (lambda w: {"v": w["v"]}, "missing 't'"),
    "missing v": (lambda w: {"t": w["t"]}, "missing 'v'"),
    "t a number": (lambda w: {**w, "t": 1_700_000_000}, "t must be an RFC 3339 string"),
    "t not rfc3339": (lambda w: {**w, "t": "22/11/2026 10:00"}, "not an RFC 3339 timestamp"),
    "t date only": (lambda w: {**w, "t": "2026-11-22"}, "not an RFC 3339 timestamp"),
    "t naive": (lambda w: {**w, "t": w["t"].rstrip("Z")}, "no UTC offset"),
    "t impossible date": (lambda w: {**w, "t": "2026-02-30T10:00:00Z"}, "not a valid date"),
    "t before 1970": (lambda w: {**w, "t": "1969-12-31T23:59:59Z"}, "before 1970"),
    "t too old": (lambda w: {**w, "t": "2026-11-01T00:00:00Z"}, "604800 s before the server time"),
    "t in the future": (
        lambda w: {**w, "t": "2026-11-22T12:05:01Z"},
        "300 s after the server time",
    ),
    "v not a list": (lambda w: {**w, "v": "0.1,0.2"}, "v must be an array of 8 numbers"),
    "v too short": (lambda w: {**w, "v": w["v"][:-1]}, "v has 7 elements, expected 8"),
    "v too long": (lambda w: {**w, "v": [*w["v"], 0.0]}, "v has 9 elements, expected 8"),
    "v string": (lambda w: {**w, "v": [*w["v"][:3], "0.5", *w["v"][4:]]}, "v[3] is a string"),
    "v bool": (lambda w: {**w, "v": [True, *w["v"][1:]]}, "v[0] is a boolean"),
    "v null": (lambda w: {**w, "v": [*w["v"][:7], None]}, "v[7] is null"),
    "v nested": (lambda w: {**w, "v": [[1.0], *w["v"][1:]]}, "v[0] is an array"),
    "v nan": (lambda w: {**w, "v": [float("nan"), *w["v"][1:]]}, "v[0] is nan"),
    "v infinity": (lambda w: {**w, "v": [*w["v"][:5], float("-inf"), *w["v"][6:]]}, "v[5] is -inf"),
    "v beyond float32": (lambda w: {**w, "v": [1e39, *w["v"][1:]]}, "outside the float32 range"),
    "v huge integer": (lambda w: {**w, "v": [10**400, *w["v"][1:]]}, "outside the float32 range"),
    "t repeated": (lambda w: {**w, "t": to_rfc3339(int(windows()[0][0]))}, "repeats window 0"),
}


@pytest.mark.parametrize("encoding", TEXT_ENCODINGS, ids=lambda e: e[0])
@pytest.mark.parametrize("case", BAD_WINDOWS, ids=str)
def test_each_bad_window_rejects_the_batch_naming_it(
    case: str, encoding: tuple[str, Callable[[list[Any]], bytes]]
) -> None:
    content_type, to_body = encoding
    breaker, expected = BAD_WINDOWS[case]
    objects: list[Any] = list(as_objects(*windows(5)))
    objects[2] = breaker(objects[2])
    error = reject(to_body(objects), content_type)
    assert error.window == 2
    assert error.detail.startswith("window 2: ")
    assert expected in error.detail


@pytest.mark.parametrize("encoding", TEXT_ENCODINGS, ids=lambda e: e[0])
def test_the_earliest_problem_wins_whichever_check_finds_it(
    encoding: tuple[str, Callable[[list[Any]], bytes]],
) -> None:
    content_type, to_body = encoding
    objects: list[Any] = list(as_objects(*windows(6)))
    objects[4] = {"t": objects[4]["t"]}  # structural, found first by the per-window loop
    objects[1]["v"][2] = float("nan")  # found later by the vectorised value check
    objects[3]["t"] = "2030-01-01T00:00:00Z"  # found by the vectorised time check
    assert reject(to_body(objects), content_type).window == 1
    objects[1]["v"][2] = 0.0
    assert reject(to_body(objects), content_type).window == 3


def test_malformed_json_says_where() -> None:
    body = json_body(as_objects(*windows(3)))
    error = reject(body[:-20], JSON_TYPE, status=400)
    assert "malformed JSON" in error.detail and "line 1 column" in error.detail
    assert "line 3 column" in reject(b'{\n "windows": [\n  {"t": ]}', JSON_TYPE, status=400).detail
    not_utf8 = reject(b'{"windows": ["\xff"]}', JSON_TYPE, status=400)
    assert "can't decode byte 0xff in position 14" in not_utf8.detail


def test_malformed_ndjson_line_names_its_window() -> None:
    lines = ndjson_body(as_objects(*windows(5))).split(b"\n")
    lines[3] = lines[3][:-5]
    error = reject(b"\n".join(lines), NDJSON_TYPE, status=400)
    assert error.window == 3 and "window 3 (line 4)" in error.detail and "column" in error.detail


def test_deeply_nested_json_is_malformed_not_a_crash() -> None:
    assert "nested too deeply" in reject(b"[" * 100_000, JSON_TYPE, status=400).detail


@pytest.mark.parametrize(
    "body", [b"[]", b'{"windows": {}}', b'{"data": []}', b'"windows"', b"null"], ids=repr
)
def test_wrong_top_level_shape(body: bytes) -> None:
    assert '{"windows": [' in reject(body, JSON_TYPE).detail


def test_ndjson_tolerates_trailing_blank_lines_and_crlf() -> None:
    times, values = windows(3)
    body = ndjson_body(as_objects(times, values)).replace(b"\n", b"\r\n") + b"\n  \n"
    np.testing.assert_array_equal(parse(body, NDJSON_TYPE).values, values)
    assert "window 1 (line 2)" in reject(body.replace(b"\r\n", b"\n\n", 1), NDJSON_TYPE, 400).detail


def test_unknown_keys_are_ignored() -> None:
    objects: list[Any] = as_objects(*windows(2))
    objects[0]["label"] = "calibration"
    assert len(parse(json_body(objects), JSON_TYPE)) == 2


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"windows": []}', JSON_TYPE),
        (b"", NDJSON_TYPE),
        (b"\n\n", NDJSON_TYPE),
        (struct.pack("<4sHHII", b"ESW1", 1, 1, DIM, 0), BINARY_TYPE),
    ],
)
def test_empty_batches_are_rejected(body: bytes, content_type: str) -> None:
    assert "no windows" in reject(body, content_type).detail


@pytest.mark.parametrize("content_type", [JSON_TYPE, NDJSON_TYPE, BINARY_TYPE])
def test_too_many_windows_is_payload_too_large(content_type: str) -> None:
    times, values = windows(11)
    body = encode_as(content_type, times, values)
    limits = BatchLimits(max_windows=10, max_past_s=LIMITS.max_past_s, max_future_s=300)
    with pytest.raises(PayloadTooLargeError) as info:
        parse(body, content_type, limits=limits)
    assert info.value.status == 413 and info.value.window == 10
    assert "11 windows" in info.value.detail and "at most 10" in info.value.detail


@pytest.mark.parametrize("encoding", TEXT_ENCODINGS, ids=lambda e: e[0])
def test_ten_thousand_text_windows_parse_in_reasonable_time(
    encoding: tuple[str, Callable[[list[Any]], bytes]],
) -> None:
    content_type, to_body = encoding
    times, values = windows(10_000, dim=128)
    body = to_body(as_objects(times, values))
    start = time.perf_counter()
    batch = parse(body, content_type, dim=128)
    elapsed = time.perf_counter() - start
    print(
        f"{content_type}: 10000 x 128 windows ({len(body) / 1e6:.1f} MB) parsed in {elapsed:.2f} s"
    )
    np.testing.assert_array_equal(batch.values, values)
    assert elapsed < 10.0


def test_a_json_batch_may_name_its_operating_condition() -> None:
    times, values = windows(3)
    body = json.dumps({"condition": "1800 rpm, high load", "windows": as_objects(times, values)})
    assert parse(body.encode(), JSON_TYPE).condition == "1800 rpm, high load"
    assert parse(json_body(as_objects(times, values)), JSON_TYPE).condition is None
    assert parse(encode_binary(times, values), BINARY_TYPE).condition is None
    for bad, why in ((1800, "must be a string"), ("", "1-200 characters"),
                     ("a\nb", "no control characters"), ("x" * 201, "1-200 characters")):
        body = json.dumps({"condition": bad, "windows": as_objects(times, values)})
        with pytest.raises(BatchValidationError, match=why) as caught:
            parse(body.encode(), JSON_TYPE)
        assert caught.value.status == 422


def test_condition_spans_of_one_name_within_the_gap_merge() -> None:
    gap = round(CONDITION_MERGE_GAP_S * 1e6)
    spans = [ConditionSpan("b", 30, 40), ConditionSpan("a", 0, 10), ConditionSpan("a", 12, 20),
             ConditionSpan("a", 20 + gap + 1, 20 + gap + 5)]
    assert merge_spans(spans) == [ConditionSpan("a", 0, 20), ConditionSpan("b", 30, 40),
                                  ConditionSpan("a", 20 + gap + 1, 20 + gap + 5)]
    assert ConditionSpan.of("a", np.array([5, 3, 9])) == ConditionSpan("a", 3, 10)
