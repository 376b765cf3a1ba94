"""k-of-n firing, hysteresis and the per-batch state of the alert engine: the pure state
machine on synthetic score series, then through `on_scored` on the real database."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from service.alerting.engine import State, step
from service.alerting.hooks import ScoredWindow
from service.alerting.rules import Rule, clear_level
from service.queries import alert_rules
from tests.service.alerting.conftest import feed, make_machine, now_s

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SENSOR = uuid.uuid4()


def windows(scores: list[float], threshold: float = 1.0, start: int = 0) -> list[ScoredWindow]:
    return [ScoredWindow(T0 + timedelta(seconds=start + i), SENSOR, s, threshold, s > threshold)
            for i, s in enumerate(scores)]


def run(rule: Rule, scores: list[float], batch: int = 7) -> list[tuple[str, int, int | None]]:
    """Feed `scores` in batches; (event, index of firing window, index of end) per alert."""
    state, current, alerts = State(0, 0, None, {}), None, []
    for offset in range(0, len(scores), batch):
        for episode in step(rule, state, current, windows(scores[offset:offset + batch],
                                                          start=offset)):
            if episode.alert_id is None:
                episode.alert_id = uuid.uuid4()
                alerts.append(episode)
            current = None if episode.ends_at is not None else episode
    return [("resolved" if a.ends_at else "firing",
             int((a.fired_at_t - T0).total_seconds()) if a.fired_at_t else -1,
             int((a.ends_at - T0).total_seconds()) if a.ends_at else None) for a in alerts]


def test_k_of_n_fires_on_the_kth_anomalous_window_within_n() -> None:
    rule = Rule(k=3, n=5, clear_windows=4)
    # Two anomalous windows in any five never fire.
    assert run(rule, [2, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2] * 3) == []
    # The third within five fires, at that window.
    assert run(rule, [0, 2, 0, 2, 0, 2, 0, 0]) == [("firing", 5, None)]


def test_resolves_after_m_consecutive_windows_below_the_clear_level() -> None:
    rule = Rule(k=2, n=3, clear_ratio=0.8, clear_windows=4)
    # Below the threshold but above the clear level (0.8): not clear, stays firing.
    hovering = [2, 2] + [0.9] * 30
    assert run(rule, hovering) == [("firing", 1, None)]
    # Three clear windows and one hovering one reset the run; four in a row resolve, and
    # the alert ends where the clear run began.
    scores = [2, 2, 0.1, 0.1, 0.1, 0.95, 0.1, 0.1, 0.1, 0.1, 0.1]
    assert run(rule, scores) == [("resolved", 1, 6)]


def test_noisy_series_around_the_threshold_fires_once_and_never_flaps() -> None:
    rng = random.Random(7)
    noisy = [1.0 + rng.gauss(0, 0.08) for _ in range(600)]  # ~half the windows anomalous
    rule = Rule(k=3, n=5, clear_ratio=0.8, clear_windows=10)
    assert sum(s > 1.0 for s in noisy) > 200
    events = run(rule, [0.2] * 20 + noisy + [0.2] * 30)
    assert len(events) == 1
    assert events[0][0] == "resolved" and events[0][2] == 20 + 600
    # Without hysteresis (clear level = threshold, one clear window resolves) the same
    # series flaps dozens of times: that is what the rule prevents.
    assert len(run(Rule(k=1, n=1, clear_ratio=1.0, clear_windows=1), noisy)) > 50


def test_state_carries_across_batches_of_any_size() -> None:
    rng = random.Random(3)
    scores = [rng.choice([0.1, 0.1, 0.1, 2.0]) for _ in range(400)]
    rule = Rule(k=3, n=6, clear_ratio=0.5, clear_windows=5)
    reference = run(rule, scores, batch=1)
    assert reference, "the series should fire at least once"
    for batch in (2, 5, 13, 64, 400):
        assert run(rule, scores, batch=batch) == reference


def test_clear_level_stays_below_negative_thresholds() -> None:
    assert clear_level(10.0, 0.9) == pytest.approx(9.0)
    assert clear_level(-0.5, 0.9) == pytest.approx(-0.55)
    assert clear_level(-0.5, 0.9) < -0.5


def test_on_scored_opens_one_alert_and_resolves_it(conn: psycopg.Connection) -> None:
    machine_id, (sensor,) = make_machine(conn)
    with conn.transaction():
        alert_rules.upsert_rule(conn, machine_id, {**Rule(k=3, n=5, clear_windows=5)
                                                   .as_dict()})
    t = feed(conn, machine_id, sensor, now_s(), [0.1, 2.0, 0.1, 3.0], 1.0)
    # The third anomalous window arrives in the next batch; the alert starts at the first.
    t = feed(conn, machine_id, sensor, t, [2.5, 2.0, 0.95], 1.0)
    rows = conn.execute("SELECT state, starts_at, peak_score, window_count, anomalous_count "
                        "FROM alerts WHERE machine_id = %s", (machine_id,)).fetchall()
    assert len(rows) == 1
    state, starts_at, peak, count, anomalous = rows[0]
    assert state == "firing" and peak == pytest.approx(2.5) and (count, anomalous) == (3, 2)
    assert starts_at == t - timedelta(seconds=6)  # the 2.0 window of the first batch
    feed(conn, machine_id, sensor, t, [0.1] * 5, 1.0)
    assert conn.execute("SELECT state, ends_at FROM alerts WHERE machine_id = %s",
                        (machine_id,)).fetchone() == ("resolved", t)


def test_rescored_and_late_windows_do_not_count_twice(conn: psycopg.Connection) -> None:
    machine_id, (sensor,) = make_machine(conn)
    start = now_s()
    feed(conn, machine_id, sensor, start, [2.0, 2.0], 1.0)
    # The same windows scored again by a new model version: ignored by the engine.
    feed(conn, machine_id, sensor, start, [2.0, 2.0], 1.0, version=2)
    assert conn.execute("SELECT count(*) FROM alerts WHERE machine_id = %s",
                        (machine_id,)).fetchone() == (0,)


def test_windows_of_several_sensors_share_the_machine_ring(conn: psycopg.Connection) -> None:
    machine_id, (a, b) = make_machine(conn, sensors=2)
    start = now_s()
    feed(conn, machine_id, a, start, [2.0, 0.1], 1.0)
    feed(conn, machine_id, b, start, [2.0], 1.0)  # same second, other sensor: counts
    feed(conn, machine_id, a, start + timedelta(seconds=2), [2.0], 1.0)
    row = conn.execute("SELECT state, sensor_ids FROM alerts WHERE machine_id = %s",
                       (machine_id,)).fetchone()
    assert row is not None and row[0] == "firing"


def test_disabled_rule_records_nothing(conn: psycopg.Connection) -> None:
    machine_id, (sensor,) = make_machine(conn)
    with conn.transaction():
        alert_rules.upsert_rule(conn, machine_id, {**Rule(enabled=False).as_dict()})
    feed(conn, machine_id, sensor, now_s(), [5.0] * 20, 1.0)
    assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
