"""How the fleet embedding picks its training windows from the held audio: evenly over
every recording through their counts, and read in pieces of bounded length."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from service.fleet.data import PIECE_S, _pick, _pieces, _Span

DAY = datetime(2026, 12, 1, tzinfo=UTC)


def test_picks_spread_over_every_recording_and_stay_inside_them() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    spans = [_Span(a, a, DAY, 259_200), _Span(b, b, DAY + timedelta(days=1), 10)]  # 72 h, 10 s
    picked = _pick(spans, 1000)
    assert len(picked) == 1000
    assert {w.recording for w in picked} == {0, 1}
    for w in picked:
        span = spans[w.recording]
        assert span.start <= w.start <= span.start + timedelta(seconds=span.windows - 1)
    everything = _pick(spans, 10**6)
    assert len(everything) == 259_210  # fewer held than asked: every window once


def test_reads_never_hold_more_than_a_piece_of_audio() -> None:
    s = uuid.uuid4()
    spans = [_Span(s, s, DAY, 259_200)]
    picked = _pick(spans, 2000)  # one every ~130 s
    pieces = _pieces(list(range(len(picked))), picked)
    assert sum(len(p) for p in pieces) == 2000
    assert all(picked[p[-1]].start - picked[p[0]].start < PIECE_S for p in pieces)
