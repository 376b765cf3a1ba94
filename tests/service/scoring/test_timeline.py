"""Timeline planning: step parsing, the automatic nice step, alignment and source choice."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.errors import UnprocessableError
from service.scoring import timeline
from tests.service.scoring.factories import utc


@pytest.mark.parametrize(("text", "seconds"), [
    ("1", 1), ("45", 45), ("30s", 30), ("5m", 300), ("1h", 3600), (" 2 h ", 7200),
    ("1d", 86400), ("1w", 604800),
])
def test_parse_step(text: str, seconds: int) -> None:
    assert timeline.parse_step(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0m", "-5s", "1.5h", "5 minutes", "h"])
def test_parse_step_rejects(text: str) -> None:
    with pytest.raises(UnprocessableError):
        timeline.parse_step(text)


@pytest.mark.parametrize(("span_s", "step"), [
    (60, 1), (1000, 1), (1001, 5), (3600, 5), (86400, 300), (7 * 86400, 900),
    (30 * 86400, 3600), (365 * 86400, 43200), (3 * 365 * 86400, 604800),
    (40 * 365 * 86400, 3 * 604800),
])
def test_auto_step_is_the_smallest_nice_step_within_1000_buckets(span_s: int, step: int) -> None:
    assert timeline.auto_step(span_s) == step


@pytest.mark.parametrize(("step", "source"), [
    (1, "raw"), (30, "raw"), (90, "raw"), (60, "rollup-1m"), (900, "rollup-1m"),
    (5400, "rollup-1m"), (3600, "rollup-1h"), (86400, "rollup-1h"), (604800, "rollup-1h"),
])
def test_source_follows_the_step(step: int, source: str) -> None:
    assert timeline.source_for(step) == source


def test_plan_covers_the_range_with_whole_aligned_buckets() -> None:
    plan = timeline.plan(utc(2026, 11, 20, 6, 7, 13), utc(2026, 11, 20, 8, 59, 59), 3600)
    assert (plan.lo, plan.hi, plan.buckets) == (utc(2026, 11, 20, 6), utc(2026, 11, 20, 9), 3)
    exact = timeline.plan(utc(2026, 11, 20, 6), utc(2026, 11, 20, 9), 3600)
    assert (exact.lo, exact.hi) == (utc(2026, 11, 20, 6), utc(2026, 11, 20, 9))
    week = timeline.plan(utc(2026, 11, 20), utc(2026, 11, 21), 604800)
    assert week.lo.weekday() == 0 and week.hi - week.lo == timedelta(weeks=1)


def test_plan_rejects_bad_ranges() -> None:
    with pytest.raises(UnprocessableError, match="after start"):
        timeline.plan(utc(2026, 11, 20), utc(2026, 11, 20), None)
    with pytest.raises(UnprocessableError, match="10000"):
        timeline.plan(utc(2026, 11, 1), utc(2026, 11, 20), 60)
    assert timeline.plan(utc(2026, 11, 1), utc(2026, 11, 7, 22, 40), 60).buckets == 10000
