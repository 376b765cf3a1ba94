"""Event detection from window probabilities (smoothing, hysteresis, merging, minimum
duration, data holes, timing) and the event-based F1 it is evaluated with."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.errors import InvalidParamsError
from detectors.event_metrics import event_scores, micro_average
from detectors.events import (
    EventParams,
    calibrate_timing,
    detect_events,
    validate_event_params,
)

RAW = EventParams(smoothing=1, on=0.5, off=0.3, min_duration_s=0.0, merge_gap_s=0.0)


def spans(probs: list[float], params: EventParams = RAW, hop: float = 1.0,
          times: list[float] | None = None) -> list[tuple[float, float]]:
    t = np.array(times) if times is not None else np.arange(len(probs)) * hop
    found = detect_events(t, np.array(probs)[:, None], ["x"], params, window_s=1.0)
    return [(e.start, e.end) for e in found]


def test_event_timing_follows_window_centres() -> None:
    # Windows start every 0.25 s and describe their centre (start + 0.5 s); the event runs
    # half a hop either side of its first and last centres.
    assert spans([0, 0, 1, 1, 1, 0], hop=0.25) == [(0.5 + 0.5 - 0.125, 0.5 + 1.0 + 0.125)]
    assert spans([1, 1, 0], hop=1.0) == [(0.0, 2.0)]


def test_hysteresis_keeps_one_event_where_a_single_threshold_would_flap() -> None:
    hovering = [0, 0.6, 0.45, 0.55, 0.4, 0.6, 0.1, 0]
    assert len(spans(hovering)) == 1
    single = EventParams(1, 0.5, 0.5, 0.0, 0.0)
    assert len(spans(hovering, single)) == 3


def test_smoothing_removes_isolated_spikes() -> None:
    probs = [0, 0, 0.9, 0, 0, 0, 0.9, 0.9, 0.9, 0.9, 0, 0]
    assert len(spans(probs)) == 2
    smoothed = spans(probs, EventParams(3, 0.5, 0.3, 0.0, 0.0))
    assert len(smoothed) == 1 and smoothed[0][0] == pytest.approx(6.0)


def test_merge_gap_and_minimum_duration() -> None:
    probs = [1, 1, 0, 1, 1, 0, 0, 0, 1, 0]
    assert len(spans(probs)) == 3
    assert spans(probs, EventParams(1, 0.5, 0.3, 0.0, 1.5)) == [(0.0, 5.0), (8.0, 9.0)]
    assert spans(probs, EventParams(1, 0.5, 0.3, 1.5, 1.5)) == [(0.0, 5.0)]


def test_a_hole_in_the_data_ends_an_event() -> None:
    times = [0, 1, 2, 10, 11]
    assert spans([1, 1, 1, 1, 1], times=times) == [(0.0, 3.0), (10.0, 12.0)]


def test_classes_are_independent_and_sorted_by_start() -> None:
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9], [0.1, 0.9]])
    found = detect_events(np.arange(4.0), probs, ["a", "b"], RAW)
    assert [(e.label, e.start, e.end) for e in found] == [("a", 0.0, 2.0), ("b", 2.0, 4.0)]
    assert found[0].confidence == pytest.approx(0.9)
    per_class = detect_events(np.arange(4.0), probs, ["a", "b"],
                              {"b": EventParams(1, 0.95, 0.5, 0.0, 0.0)})
    assert [e.label for e in per_class] == ["a"]


def test_bad_inputs_and_params() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        detect_events(np.array([0.0, 0.0]), np.ones((2, 1)), ["x"])
    with pytest.raises(InvalidParamsError, match=r"off .* must not exceed on"):
        validate_event_params({"on": 0.3, "off": 0.6})
    with pytest.raises(InvalidParamsError) as caught:
        validate_event_params({"smoothing": 0, "speed": 1})
    assert len(caught.value.errors) == 2
    assert detect_events([], np.empty((0, 1)), ["x"]) == []


def test_event_f1_with_onset_collar() -> None:
    reference = [("bark", 1.0, 2.0), ("bark", 5.0, 6.0), ("saw", 3.0, 8.0)]
    estimated = [("bark", 1.15, 1.9), ("bark", 5.3, 6.0), ("saw", 2.9, 4.0), ("saw", 9.0, 9.5)]
    scores = event_scores(reference, estimated, collar=0.2)
    assert scores["bark"].as_dict() == {"tp": 1, "fp": 1, "fn": 1, "precision": 0.5,
                                        "recall": 0.5, "f1": 0.5}
    assert (scores["saw"].tp, scores["saw"].fp, scores["saw"].fn) == (1, 1, 0)
    # With offsets checked (collar or half the reference length), saw's 4.0 s offset fails.
    strict = event_scores(reference, estimated, collar=0.2, offset_ratio=0.5)
    assert strict["saw"].tp == 0 and strict["bark"].tp == 1
    assert micro_average(scores).f1 == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))


def test_matching_is_maximal_not_greedy() -> None:
    # A greedy pairing of the first reference with the first estimate would leave the
    # second reference unmatched; the maximum matching pairs both.
    reference = [("x", 1.0, 2.0), ("x", 1.3, 2.0)]
    estimated = [("x", 1.15, 2.0), ("x", 0.9, 2.0)]
    assert event_scores(reference, estimated, collar=0.2)["x"].tp == 2


def test_timing_is_learned_per_class_and_subtracted() -> None:
    # Barks detected 0.3 s early every time, saws on time: one correction per class.
    probs, reference = np.zeros((80, 2)), []
    for k in range(4):
        probs[10 + 20 * k:14 + 20 * k, 0] = 1.0  # "bark" windows
        probs[4 + 20 * k:8 + 20 * k, 1] = 1.0  # "saw" windows
        reference += [("bark", 10.3 + 20 * k, 14.0 + 20 * k), ("saw", 4.0 + 20 * k,
                                                               8.0 + 20 * k)]
    found = detect_events(np.arange(80.0), probs, ["bark", "saw"], RAW)
    timing = calibrate_timing(found, reference)
    assert timing["bark"].onset_shift_s == pytest.approx(-0.3) and timing["bark"].n == 4
    assert timing["saw"].onset_shift_s == pytest.approx(0.0)
    corrected = detect_events(np.arange(80.0), probs, ["bark", "saw"], RAW, timing=timing)
    assert [e.start for e in corrected if e.label == "bark"] == \
        pytest.approx([10.3, 30.3, 50.3, 70.3])
    assert calibrate_timing(found, reference[:4]) == {}  # too few pairs: no correction
