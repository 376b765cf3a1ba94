"""Many small JSON batches validated at once, for the MQTT bridge's groups.

`codec.parse_batch` runs about ten numpy checks per batch (finite values, time bounds,
duplicates); on a one-window MQTT message those fixed costs are most of the parse
(BENCHMARKS.md, ingest section: the bridge's CPU per message). Here every body gets the
same structural checks window by window, then the numpy checks run once over all windows
of all bodies. A body any check flags is parsed again alone by `parse_batch`, so its error
is exactly the one the API gives; a body no check flags is exactly what `parse_batch`
accepts, with the same arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from .codec import JSON_TYPE, Batch, BatchLimits, _window_fields, parse_batch
from .conditions import check_condition
from .errors import IngestError

_SLOW = object()  # marks a body for the one-by-one path


def parse_json_group(bodies: Sequence[tuple[bytes, int]], limits: BatchLimits,
                     now_us: int) -> list[Batch | IngestError]:
    """For each (JSON body, the sensor's dim): its Batch, or the IngestError
    `parse_batch` raises for it."""
    by_dim: dict[int, list[tuple[int, Any]]] = {}  # dim -> (index, (times, rows, condition))
    for i, (body, dim) in enumerate(bodies):
        fields = _structure(body, dim, limits)
        if fields is not _SLOW:
            by_dim.setdefault(dim, []).append((i, fields))
    out: list[Batch | IngestError | None] = [None] * len(bodies)
    for dim, members in by_dim.items():
        checked = _checked([fields for _, fields in members], dim, limits, now_us)
        for (i, _), batch in zip(members, checked, strict=True):
            out[i] = batch
    return [got if got is not None else _one(body, dim, limits, now_us)
            for (body, dim), got in zip(bodies, out, strict=True)]


def _structure(body: bytes, dim: int, limits: BatchLimits) -> Any:
    """(times, rows) if the body passes every per-window check, else _SLOW."""
    try:
        doc = orjson.loads(body)
        items = doc["windows"] if isinstance(doc, dict) else None
        if not isinstance(items, list) or not 0 < len(items) <= limits.max_windows:
            return _SLOW
        pairs = [_window_fields(i, item, dim) for i, item in enumerate(items)]
        condition = doc.get("condition")
        if condition is not None:
            condition = check_condition(condition)
    except Exception:  # any refusal: the one-by-one path finds and words it
        return _SLOW
    return [t for t, _ in pairs], [v for _, v in pairs], condition


def _checked(parts: list[Any], dim: int, limits: BatchLimits, now_us: int
             ) -> list[Batch | None]:
    """The value and time checks over all windows of `parts` at once; None for a part
    any check flags."""
    counts = [len(times) for times, _, _ in parts]
    times = np.fromiter((t for ts, _, _ in parts for t in ts), dtype=np.int64,
                        count=sum(counts))
    with np.errstate(over="ignore"):  # overflow to inf is flagged as non-finite
        values = np.asarray([v for _, rows, _ in parts for v in rows],
                            dtype=np.float32).reshape(len(times), dim)
    oldest = max(0, now_us - round(limits.max_past_s * 1e6))
    newest = now_us + round(limits.max_future_s * 1e6)
    bad = ~np.isfinite(values).all(axis=1) | (times < oldest) | (times > newest)
    out: list[Batch | None] = []
    start = 0
    for n, (_, _, condition) in zip(counts, parts, strict=True):
        window = slice(start, start + n)
        start += n
        distinct = n == 1 or np.unique(times[window]).size == n
        out.append(Batch(times[window], values[window], condition)
                   if distinct and not bad[window].any() else None)
    return out


def _one(body: bytes, dim: int, limits: BatchLimits, now_us: int) -> Batch | IngestError:
    try:
        return parse_batch(body, JSON_TYPE, dim=dim, limits=limits, now_us=now_us)
    except IngestError as exc:
        return exc
