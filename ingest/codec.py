"""Parse and validate embedding batches (``POST /v1/sensors/{id}/embeddings``).

A batch is a list of windows, each a start time and one embedding vector of the sensor's
dimension. A batch is accepted or rejected as a whole; a rejection names the first
offending window (zero-based) and why. Three encodings carry the same content:

``application/json``
    ``{"windows": [{"t": "2026-11-22T10:00:00Z", "v": [0.1, ...]}, ...]}``
``application/x-ndjson``
    one ``{"t": ..., "v": [...]}`` object per line; trailing blank lines are ignored.
``application/vnd.earshot.windows.v1`` (binary, all integers little-endian)::

    offset       size          field
    0            4             magic  b"ESW1"
    4            2             uint16 version = 1
    6            2             uint16 dtype   = 1 (float32; the only value in version 1)
    8            4             uint32 dim     (must equal the sensor's dimension)
    12           4             uint32 count   (number of windows, >= 1)
    16           8 * count     int64  window start times, microseconds since
                                      1970-01-01T00:00:00Z
    16 + 8*count 4*count*dim   float32 vectors, row-major (window 0 first)

    The body is exactly ``16 + count * (8 + 4 * dim)`` bytes; both arrays are naturally
    aligned, so a server (or client) maps them with ``numpy.frombuffer`` without copying.

JSON rules: ``t`` is an RFC 3339 timestamp with a UTC offset (``Z`` or ``+hh:mm``);
fractions beyond microseconds are truncated. ``v`` is an array of exactly ``dim`` JSON
numbers; NaN/Infinity (which some encoders emit) and values outside the float32 range are
rejected, as are strings, booleans and nulls. Keys other than ``t`` and ``v`` are ignored.
The object may also carry ``"condition": "<name>"``, the machine's operating condition
while all of its windows were recorded (:func:`check_condition`); the other encodings
(and JSON too) take it as the request's ``?condition=`` instead.

Every encoding: 1 <= windows <= ``max_windows`` (more is 413); each ``t`` not before 1970,
at most ``max_past_s`` before and ``max_future_s`` after the server's clock; ``t`` distinct
within a batch (a duplicate is a client bug; retries across requests are deduplicated by
storage). Malformed bodies are 400, well-formed but invalid ones 422.
"""

from __future__ import annotations

import json
import re
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson

from ingest.conditions import check_condition
from ingest.errors import (
    BatchValidationError,
    PayloadTooLargeError,
    UnsupportedMediaTypeError,
    json_type_name,
)

JSON_TYPE = "application/json"
NDJSON_TYPE = "application/x-ndjson"
BINARY_TYPE = "application/vnd.earshot.windows.v1"
SUPPORTED_CONTENT_TYPES = (JSON_TYPE, NDJSON_TYPE, BINARY_TYPE)

BINARY_MAGIC = b"ESW1"
BINARY_VERSION = 1
DTYPE_FLOAT32 = 1
_HEADER = struct.Struct("<4sHHII")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d+)?([Zz]|[+-]\d\d:\d\d)?", re.ASCII)
_NUMBER_TYPES = frozenset({int, float})
_FLOAT32_MAX = float(np.finfo(np.float32).max)
@dataclass(frozen=True)
class BatchLimits:
    max_windows: int
    max_past_s: float
    max_future_s: float


@dataclass(frozen=True, eq=False)
class Batch:
    """Columnar windows: ``times_us`` int64 (n,), ``values`` float32 (n, dim), and the
    operating condition the body named (JSON only; None when it named none).

    Arrays from the binary encoding are read-only views of the request body.
    """

    times_us: np.ndarray
    values: np.ndarray
    condition: str | None = None

    def __len__(self) -> int:
        return int(self.times_us.shape[0])


class _Problem(Exception):
    """What is wrong with one window; only the earliest one found becomes the response."""

    def __init__(self, window: int, detail: str, status: int = 422) -> None:
        super().__init__(detail)
        self.window, self.detail, self.status = window, detail, status


def now_us() -> int:
    """The server time in microseconds since the epoch, as batches are checked against."""
    return time.time_ns() // 1000


def to_rfc3339(us: int) -> str:
    """``2026-11-22T10:00:00Z`` or, with a sub-second part, ``...T10:00:00.250000Z``."""
    dt = datetime(1970, 1, 1) + timedelta(microseconds=int(us))
    return dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds") + "Z"


def _describe_time(us: int) -> str:
    try:
        return to_rfc3339(us)
    except OverflowError:
        return f"{us} µs since the epoch"


def parse_rfc3339(text: str) -> int:
    """Microseconds since the epoch; ValueError saying what is wrong otherwise."""
    # fromisoformat alone would also take ISO 8601 forms outside RFC 3339 (dates without
    # times, week dates, basic format), so the regex decides the syntax and it the calendar.
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(f"{text[:64]!r} is not an RFC 3339 timestamp (2026-11-22T10:00:00Z)")
    if m.group(1) is None:
        raise ValueError(f"{text!r} has no UTC offset; append 'Z' or '+hh:mm'")
    try:
        dt = datetime.fromisoformat(text.upper())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a valid date and time ({exc})") from None
    return (dt - _EPOCH) // _ONE_US


def _window_fields(i: int, item: Any, dim: int) -> tuple[int, list[Any]]:
    def fail(detail: str) -> _Problem:
        return _Problem(i, f"window {i}: {detail}")

    if not isinstance(item, dict):
        raise fail(f'expected an object {{"t": ..., "v": [...]}}, got {json_type_name(item)}')
    if "t" not in item or "v" not in item:
        raise fail(f"missing {'t' if 't' not in item else 'v'!r}")
    t, v = item["t"], item["v"]
    if not isinstance(t, str):
        raise fail(f"t must be an RFC 3339 string, got {json_type_name(t)}")
    try:
        t_us = parse_rfc3339(t)
    except (ValueError, OverflowError) as exc:
        raise fail(f"t: {exc}") from None
    if not isinstance(v, list):
        raise fail(f"v must be an array of {dim} numbers, got {json_type_name(v)}")
    if len(v) != dim:
        raise fail(f"v has {len(v)} elements, expected {dim}")
    types = set(map(type, v))
    if not types <= _NUMBER_TYPES:
        j = next(j for j, x in enumerate(v) if type(x) not in _NUMBER_TYPES)
        raise fail(f"v[{j}] is {json_type_name(v[j])}, expected a number")
    # A huge JSON integer would make numpy raise instead of overflowing to inf like a float.
    # Only integers are looked at: NaN/Infinity tokens are floats, reported as non-finite.
    if int in types:
        j = next((j for j, x in enumerate(v) if type(x) is int and abs(x) > _FLOAT32_MAX), -1)
        if j >= 0:
            raise fail(f"v[{j}] is an integer outside the float32 range")
    return t_us, v


def _loads(text: bytes, line: int | None = None) -> Any:
    """orjson (several times faster) for what it accepts; anything it refuses goes through
    json.loads, whose acceptance and messages the API documents (NaN tokens become 422s,
    UTF-16 bodies parse, big integers are reported), turning every failure into a 400
    problem that says where it is. Both give the same values for what both accept."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    where = "in the body" if line is None else f"window {line} (line {line + 1}): JSON"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        at = f"line {exc.lineno} column {exc.colno}" if line is None else f"column {exc.colno}"
        detail = f"malformed JSON {where} at {at}: {exc.msg}"
    except RecursionError:
        detail = f"JSON {where} is nested too deeply"
    except ValueError as exc:  # undecodable bytes, integers beyond Python's digit limit
        detail = f"malformed JSON {where}: {exc}"
    raise _Problem(line or 0, detail, status=400)


def _parse_items(
    items: Iterable[Any], count: int, dim: int, limits: BatchLimits, now_us: int
) -> Batch:
    """Structural checks window by window, stopping at the first failure; the vectorised
    value and time checks then run over the windows before it, so the error reported is
    the earliest one whichever check finds it."""
    _check_count(count, limits)
    times: list[int] = []
    rows: list[list[Any]] = []
    problem = None
    try:
        for i, item in enumerate(items):
            t_us, v = _window_fields(i, item, dim)
            times.append(t_us)
            rows.append(v)
    except _Problem as exc:
        problem = exc
    with np.errstate(over="ignore"):  # overflow to inf is reported by _value_problem
        values = np.asarray(rows, dtype=np.float32).reshape(len(rows), dim)
    return _validate(Batch(np.asarray(times, dtype=np.int64), values), limits, now_us, problem)


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def _value_problem(values: np.ndarray) -> _Problem | None:
    i = _first(~np.isfinite(values).all(axis=1))
    if i is None:
        return None
    j = int(np.flatnonzero(~np.isfinite(values[i]))[0])
    why = "NaN, Infinity or outside the float32 range"
    return _Problem(i, f"window {i}: v[{j}] is {values[i, j]} ({why}); numbers must be finite")


def _time_problems(times: np.ndarray, limits: BatchLimits, now_us: int) -> list[_Problem | None]:
    oldest = now_us - round(limits.max_past_s * 1e6)
    newest = now_us + round(limits.max_future_s * 1e6)
    now = _describe_time(now_us)
    checks = [
        (times < 0, "is before 1970-01-01T00:00:00Z"),
        (times < oldest, f"is more than {limits.max_past_s:g} s before the server time {now}"),
        (times > newest, f"is more than {limits.max_future_s:g} s after the server time {now}"),
    ]
    found = [(i, why) for mask, why in checks if (i := _first(mask)) is not None]
    problems = [_Problem(i, f"window {i}: t {_describe_time(times[i])} {why}") for i, why in found]
    return [*problems, _duplicate_problem(times)]


def _duplicate_problem(times: np.ndarray) -> _Problem | None:
    order = np.argsort(times, kind="stable")
    ordered = times[order]
    repeats = order[1:][ordered[1:] == ordered[:-1]]  # later occurrence of each equal pair
    if repeats.size == 0:
        return None
    i = int(repeats.min())
    first = int(np.flatnonzero(times == times[i])[0])
    why = "start times within a batch must be distinct"
    return _Problem(i, f"window {i}: t {_describe_time(times[i])} repeats window {first}; {why}")


def _validate(batch: Batch, limits: BatchLimits, now_us: int, problem: _Problem | None) -> Batch:
    times = batch.times_us
    found = [problem, _value_problem(batch.values), *_time_problems(times, limits, now_us)]
    problems = [p for p in found if p is not None]
    if problems:
        first = min(problems, key=lambda p: p.window)
        raise BatchValidationError(first.detail, window=first.window, status=first.status)
    return batch


def _check_count(count: int, limits: BatchLimits) -> None:
    if count == 0:
        raise BatchValidationError("the batch contains no windows")
    if count > limits.max_windows:
        raise PayloadTooLargeError(
            f"the batch has {count} windows; at most {limits.max_windows} are accepted per "
            "request (split it)",
            window=limits.max_windows,
        )


def _parse_json(body: bytes, dim: int, limits: BatchLimits, now_us: int) -> Batch:
    try:
        doc = _loads(body)
    except _Problem as exc:
        raise BatchValidationError(exc.detail, status=400) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("windows"), list):
        raise BatchValidationError(
            'expected a JSON object {"windows": [{"t": "<RFC 3339>", "v": [numbers]}, ...]}'
        )
    condition = doc.get("condition")
    if condition is not None:
        condition = check_condition(condition)
    batch = _parse_items(doc["windows"], len(doc["windows"]), dim, limits, now_us)
    return batch if condition is None else Batch(batch.times_us, batch.values, condition)


def _parse_ndjson(body: bytes, dim: int, limits: BatchLimits, now_us: int) -> Batch:
    lines = body.split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()
    items = (_loads(line, i) for i, line in enumerate(lines))  # lazily: stop at a bad line
    return _parse_items(items, len(lines), dim, limits, now_us)


def _parse_binary(body: bytes, dim: int, limits: BatchLimits, now_us: int) -> Batch:
    def malformed(detail: str, status: int = 400) -> BatchValidationError:
        return BatchValidationError(f"binary batch: {detail}", status=status)

    if len(body) < _HEADER.size:
        raise malformed(f"{len(body)} bytes is shorter than the {_HEADER.size}-byte header")
    magic, version, dtype, body_dim, count = _HEADER.unpack_from(body)
    if magic != BINARY_MAGIC:
        raise malformed(f"bad magic {magic!r}, expected {BINARY_MAGIC!r}")
    if version != BINARY_VERSION:
        raise malformed(f"unsupported version {version}, expected {BINARY_VERSION}")
    if dtype != DTYPE_FLOAT32:
        raise malformed(f"unsupported dtype {dtype}, expected {DTYPE_FLOAT32} (float32)")
    if body_dim != dim:
        raise malformed(f"dim is {body_dim}, but this sensor's embeddings have {dim}", 422)
    _check_count(count, limits)
    expected = _HEADER.size + count * (8 + 4 * dim)
    if len(body) != expected:
        raise malformed(
            f"{count} windows of dim {dim} need {expected} bytes, got {len(body)}"
            f" ({'truncated' if len(body) < expected else 'trailing bytes'})"
        )
    times = np.frombuffer(body, dtype="<i8", count=count, offset=_HEADER.size)
    values = np.frombuffer(body, dtype="<f4", count=count * dim, offset=_HEADER.size + 8 * count)
    return _validate(Batch(times, values.reshape(count, dim)), limits, now_us, None)


def encode_binary(times_us: np.ndarray, values: np.ndarray) -> bytes:
    """Encode windows as ``application/vnd.earshot.windows.v1`` (see the module docstring)."""
    times = np.ascontiguousarray(times_us, dtype="<i8")
    vecs = np.ascontiguousarray(values, dtype="<f4")
    if times.ndim != 1 or vecs.ndim != 2 or vecs.shape[0] != times.shape[0]:
        raise ValueError(f"need times (n,) and values (n, dim), got {times.shape}, {vecs.shape}")
    header = _HEADER.pack(BINARY_MAGIC, BINARY_VERSION, DTYPE_FLOAT32, vecs.shape[1], len(times))
    return b"".join((header, times.tobytes(), vecs.tobytes()))


_PARSERS = {JSON_TYPE: _parse_json, NDJSON_TYPE: _parse_ndjson, BINARY_TYPE: _parse_binary}


def parse_batch(
    body: bytes, content_type: str, *, dim: int, limits: BatchLimits, now_us: int
) -> Batch:
    """Parse and validate a batch; raises an IngestError subclass for anything invalid.

    Content-type parameters are ignored: json.loads detects UTF-8/16/32 from the bytes.
    """
    parser = _PARSERS.get(content_type.partition(";")[0].strip().lower())
    if parser is None:
        raise UnsupportedMediaTypeError(
            f"content type {content_type!r} is not supported; send one of "
            f"{', '.join(SUPPORTED_CONTENT_TYPES)}"
        )
    return parser(body, dim, limits, now_us)
