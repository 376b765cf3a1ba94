"""Sound events from per-window class probabilities.

Pure functions (no database): the events endpoint and the scorer's `event.detected`
webhooks call :func:`detect_events` on stored predictions; :mod:`detectors.event_metrics`
scores detections against reference annotations.

Timing convention: a window starting at ``t`` and lasting ``window_s`` describes the
instant ``t + window_s / 2`` (its centre). An event runs from half a hop before the centre
of its first "on" window to half a hop after the centre of its last one, so with a hop of
``h`` seconds onsets and offsets are resolved to ``h`` (1 s windows with a 0.25 s hop
place an onset within about +-0.125 s of where the probability crosses the threshold).

Per class, independently (events of different classes may overlap):

1. smoothing: centred moving average of the probability over ``smoothing`` windows
   (fewer at the edges of a contiguous run of windows);
2. hysteresis: an event opens when the smoothed probability reaches ``on`` and closes at
   the first window below ``off`` (``off <= on``), so a probability hovering around one
   threshold does not split an event into many;
3. merging: events of one class less than ``merge_gap_s`` apart become one;
4. minimum duration: events shorter than ``min_duration_s`` are dropped;
5. timing (optional): each class's typical onset/offset error, learned from labelled
   data (:func:`calibrate_timing`), is subtracted.

A hole in the data (consecutive windows further apart than 1.5 hops, e.g. a sensor that
was offline) always ends an event: nobody knows what happened in between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import InvalidParamsError
from .params import ParamSpec, validate

FloatArray = NDArray[np.float64]
RefEvent = tuple[str, float, float]  # (label, start s, end s)
GAP_FACTOR = 1.5

EVENT_PARAM_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("smoothing", int, 3, "Windows in the centred moving average of a class's "
              "probability (1: no smoothing).", min=1, max=101),
    ParamSpec("on", float, 0.5, "An event opens when the smoothed probability reaches this.",
              min=0.0, max=1.0),
    ParamSpec("off", float, 0.3, "An open event closes at the first window whose smoothed "
              "probability is below this (hysteresis: must not exceed `on`).",
              min=0.0, max=1.0),
    ParamSpec("min_duration_s", float, 0.5, "Events shorter than this many seconds are "
              "dropped.", min=0.0, max=3600.0),
    ParamSpec("merge_gap_s", float, 0.5, "Events of one class separated by less than this "
              "many seconds are merged into one.", min=0.0, max=3600.0),
)


@dataclass(frozen=True)
class EventParams:
    smoothing: int = 3
    on: float = 0.5
    off: float = 0.3
    min_duration_s: float = 0.5
    merge_gap_s: float = 0.5

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_EVENT_PARAMS = EventParams()


def validate_event_params(params: Mapping[str, object] | None,
                          context: str = "event parameters") -> EventParams:
    """Checked parameters with defaults filled; InvalidParamsError lists every problem."""
    checked = validate(EVENT_PARAM_SPECS, params, context)
    result = EventParams(**checked)  # type: ignore[arg-type]
    if result.off > result.on:
        raise InvalidParamsError([f"{context}: off ({result.off}) must not exceed on "
                                  f"({result.on}): the event would close before it opens"])
    return result


@dataclass(frozen=True)
class Event:
    label: str
    start: float  # seconds, same clock as the window times passed in
    end: float
    confidence: float  # mean smoothed probability over the event's windows
    first_window: int = field(default=0, compare=False)  # indices into the input rows
    last_window: int = field(default=0, compare=False)

    @property
    def duration(self) -> float:
        return self.end - self.start


def estimate_hop(times: FloatArray) -> float:
    """The typical spacing of window starts (median of positive differences)."""
    steps = np.diff(times)
    steps = steps[steps > 0]
    return float(np.median(steps)) if steps.size else 1.0


def smooth(values: FloatArray, width: int) -> FloatArray:
    """Centred moving average over `width` rows, averaging only rows that exist."""
    if width <= 1 or values.size == 0:
        return values.astype(np.float64)
    kernel = np.ones(width)
    total = np.convolve(values, kernel, mode="same")
    counts = np.convolve(np.ones(values.size), kernel, mode="same")
    return np.asarray(total / counts, dtype=np.float64)


def _runs(smoothed: FloatArray, on: float, off: float) -> list[tuple[int, int]]:
    """[first, last] row indices of hysteresis runs."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for i, value in enumerate(smoothed):
        if start is None and value >= on:
            start = i
        elif start is not None and value < off:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, smoothed.size - 1))
    return runs


def _segments(times: FloatArray, hop: float) -> list[tuple[int, int]]:
    """[lo, hi) row ranges without holes in the data."""
    breaks = np.flatnonzero(np.diff(times) > GAP_FACTOR * hop) + 1
    edges = [0, *breaks.tolist(), times.size]
    return [(lo, hi) for lo, hi in pairwise(edges) if hi > lo]


def _class_events(label: str, times: FloatArray, probs: FloatArray, params: EventParams,
                  window_s: float, hop: float) -> list[Event]:
    centres = times + window_s / 2
    found: list[Event] = []
    for lo, hi in _segments(times, hop):
        smoothed = smooth(probs[lo:hi], params.smoothing)
        for first, last in _runs(smoothed, params.on, params.off):
            found.append(Event(label, float(centres[lo + first] - hop / 2),
                               float(centres[lo + last] + hop / 2),
                               float(smoothed[first:last + 1].mean()), lo + first, lo + last))
    return _merge(found, params.merge_gap_s)


def _merge(events: list[Event], gap: float) -> list[Event]:
    """Join events (sorted, one class) less than `gap` apart; confidence is the
    window-weighted mean of the parts."""
    merged: list[Event] = []
    for event in events:
        if merged and event.start - merged[-1].end < gap:
            prev = merged[-1]
            n_prev = prev.last_window - prev.first_window + 1
            n_new = event.last_window - event.first_window + 1
            confidence = (prev.confidence * n_prev + event.confidence * n_new) / (n_prev + n_new)
            merged[-1] = Event(prev.label, prev.start, max(prev.end, event.end), confidence,
                               prev.first_window, event.last_window)
        else:
            merged.append(event)
    return merged


@dataclass(frozen=True)
class Timing:
    """How far a class's detected onsets and offsets typically lie from the true ones
    (detected minus true, seconds; median over `n` events). A 1 s window whose last
    quarter holds a loud bark already says "bark", so barks are detected early; a slow
    swell is detected late: a per-class property of classifier and window, learned from
    labelled data by :func:`calibrate_timing` and subtracted by :func:`detect_events`."""

    onset_shift_s: float
    offset_shift_s: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def calibrate_timing(events: Sequence[Event], reference: Sequence[RefEvent],
                     max_error_s: float = 1.0, min_events: int = 3) -> dict[str, Timing]:
    """Per class: median onset and offset errors of the detected event whose onset is
    nearest each reference event's (within `max_error_s`); classes with fewer than
    `min_events` such pairs are left out (no correction). Pass events detected on
    probabilities the model did not train on (out-of-fold), or the shifts are optimistic."""
    errors: dict[str, list[tuple[float, float]]] = {}
    for label, start, end in reference:
        near = [e for e in events if e.label == label and abs(e.start - start) <= max_error_s]
        if near:
            best = min(near, key=lambda e: abs(e.start - start))
            errors.setdefault(label, []).append((best.start - start, best.end - end))
    return {label: Timing(float(np.median([e[0] for e in found])),
                          float(np.median([e[1] for e in found])), len(found))
            for label, found in sorted(errors.items()) if len(found) >= min_events}


def _shifted(event: Event, timing: Timing | None) -> Event:
    if timing is None:
        return event
    start = event.start - timing.onset_shift_s
    end = max(event.end - timing.offset_shift_s, start + 1e-3)
    return Event(event.label, start, end, event.confidence, event.first_window,
                 event.last_window)


def detect_events(times: ArrayLike, probabilities: ArrayLike, labels: Sequence[str],
                  params: Mapping[str, EventParams] | EventParams = DEFAULT_EVENT_PARAMS,
                  window_s: float = 1.0, hop_s: float | None = None,
                  timing: Mapping[str, Timing] | None = None) -> list[Event]:
    """Events of every class in `labels` (columns of `probabilities`), sorted by start.

    `times` are window start times in seconds, ascending (one series: one sensor).
    `params` is one EventParams for every class or a mapping label -> EventParams
    (classes missing from it use the defaults). `hop_s` defaults to the median spacing.
    `timing` (from :func:`calibrate_timing`) corrects each class's onsets and offsets.
    """
    t = np.asarray(times, dtype=np.float64)
    p = np.asarray(probabilities, dtype=np.float64).reshape(t.size, len(labels))
    if t.size == 0:
        return []
    if np.any(np.diff(t) <= 0):
        raise ValueError("window times must be strictly increasing")
    hop = hop_s if hop_s is not None else estimate_hop(t)
    events: list[Event] = []
    for column, label in enumerate(labels):
        chosen = params if isinstance(params, EventParams) else \
            params.get(label, DEFAULT_EVENT_PARAMS)
        shift = (timing or {}).get(label)
        events.extend(_shifted(e, shift)
                      for e in _class_events(label, t, p[:, column], chosen, window_s, hop)
                      if e.duration >= chosen.min_duration_s)
    return sorted(events, key=lambda e: (e.start, e.label))
