"""Alert evaluation as windows are scored (called by the scorer inside its transaction).

Why a state row instead of re-reading the last n scores: it costs one indexed
`SELECT … FOR UPDATE` and one `UPDATE` per batch whatever n is, it needs no scan back for
the resolution run (`clear_windows` consecutive clear windows can reach far past n), and
locking it serialises concurrent scorers of one machine's sensors so no window flag is lost.
The last n flags are one bigint bit ring; per-sensor marks skip windows already evaluated
(a re-scored batch or a late window never counts twice).

Hysteresis: an alert fires when >= k of the last n windows are anomalous and resolves only
after `clear_windows` consecutive windows score below the clear level, which lies below the
threshold, so a score hovering around the threshold keeps one alert open, not a flapping
series of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg

from service.alerting import notify
from service.alerting.hooks import ScoredWindow
from service.alerting.rules import Rule, clear_level, rule_from_row
from service.classification.state import suppression_reason
from service.queries import alert_rules
from service.queries import alerts as alert_queries

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


@dataclass
class State:
    recent: int
    consecutive_clear: int
    clear_since: datetime | None
    marks: dict[str, int]


@dataclass
class Episode:
    """One alert's share of a batch: the alert already open, or one that fired in it."""

    alert_id: UUID | None
    starts_at: datetime | None = None
    reaches_back: bool = False  # the firing ring holds anomalous windows of earlier batches
    fired_at_t: datetime | None = None
    threshold: float | None = None
    clear_level: float | None = None
    peak_score: float | None = None
    peak_at: datetime | None = None
    last_score: float | None = None
    last_window_at: datetime | None = None
    window_count: int = 0
    anomalous_count: int = 0
    sensor_ids: set[UUID] = field(default_factory=set)
    ends_at: datetime | None = None

    def add(self, window: ScoredWindow) -> None:
        self.window_count += 1
        self.anomalous_count += int(window.anomalous)
        if self.peak_score is None or window.score > self.peak_score:
            self.peak_score, self.peak_at = window.score, window.t
        self.last_score, self.last_window_at = window.score, window.t
        self.sensor_ids.add(window.sensor_id)


def _fire(rule: Rule, windows: list[ScoredWindow], i: int, initial: int) -> Episode:
    in_batch = windows[max(0, i - rule.n + 1):i + 1]
    older_bits = rule.n - (i + 1)
    window = windows[i]
    return Episode(
        alert_id=None,
        starts_at=min((w.t for w in in_batch if w.anomalous), default=window.t),
        reaches_back=older_bits > 0 and initial & ((1 << older_bits) - 1) != 0,
        fired_at_t=window.t,
        threshold=window.threshold,
        clear_level=clear_level(window.threshold, rule.clear_ratio),
    )


def step(rule: Rule, state: State, current: Episode | None,
         windows: list[ScoredWindow]) -> list[Episode]:
    """Advance `state` over `windows` (pure): the episodes they touched, in order."""
    mask = (1 << rule.n) - 1
    initial = state.recent
    episodes = [current] if current is not None else []
    for i, window in enumerate(windows):
        state.recent = ((state.recent << 1) | int(window.anomalous)) & mask
        if window.score < clear_level(window.threshold, rule.clear_ratio):
            if state.consecutive_clear == 0:
                state.clear_since = window.t
            state.consecutive_clear += 1
        else:
            state.consecutive_clear, state.clear_since = 0, None
        if current is None and state.recent.bit_count() >= rule.k:
            current = _fire(rule, windows, i, initial)
            episodes.append(current)
            state.consecutive_clear, state.clear_since = 0, None
        if current is None:
            continue
        current.add(window)
        if state.consecutive_clear >= rule.clear_windows:
            current.ends_at = state.clear_since
            current = None
            # Flags of the fault just resolved must not re-fire it on the next window.
            state.recent, state.consecutive_clear, state.clear_since = 0, 0, None
    return episodes


def _fresh(windows: list[ScoredWindow], marks: dict[str, int]) -> list[ScoredWindow]:
    fresh = []
    for window in sorted(windows, key=lambda w: w.t):
        key, at = str(window.sensor_id), (window.t - EPOCH) // MICROSECOND
        if at > marks.get(key, -1):
            marks[key] = at
            fresh.append(window)
    return fresh


def suppression(conn: psycopg.Connection, machine_id: UUID,
                at: datetime) -> tuple[UUID | None, str | None]:
    """(active silence, other reason to hold notifications back) for a new alert.

    The other reason is the machine's operating state (`operating_state:off` while its
    configured state class is the latest predicted one): the alert is recorded, not sent."""
    return (alert_queries.active_silence(conn, machine_id, at),
            suppression_reason(conn, machine_id, at))


def _values(machine_id: UUID, model_version: int, episode: Episode) -> dict[str, Any]:
    return {
        "machine_id": machine_id, "type": "anomaly", "model_version": model_version,
        "state": "resolved" if episode.ends_at is not None else "firing",
        "starts_at": episode.starts_at, "ends_at": episode.ends_at,
        "threshold": episode.threshold, "clear_level": episode.clear_level,
        "peak_score": episode.peak_score, "peak_at": episode.peak_at,
        "last_score": episode.last_score, "last_window_at": episode.last_window_at,
        "window_count": episode.window_count, "anomalous_count": episode.anomalous_count,
        "sensor_ids": sorted(episode.sensor_ids),
    }


def _open_new(conn: psycopg.Connection, machine_id: UUID, model_version: int, rule: Rule,
              episode: Episode) -> None:
    assert episode.fired_at_t is not None and episode.starts_at is not None
    if episode.reaches_back:
        earlier = alert_queries.first_anomalous(conn, machine_id, episode.fired_at_t, rule.n)
        episode.starts_at = min(episode.starts_at, earlier or episode.starts_at)
    silence_id, reason = suppression(conn, machine_id, episode.fired_at_t)
    values = _values(machine_id, model_version, episode)
    values.update(silenced=silence_id is not None, silence_id=silence_id,
                  suppressed_reason=reason)
    row = alert_queries.insert(conn, values)
    if row is None:  # cannot happen while the state row is locked; never double-open
        return
    row = notify.fired(conn, row)
    if row["state"] == "resolved":
        notify.resolved(conn, row)


def _update_open(conn: psycopg.Connection, episode: Episode) -> None:
    values: dict[str, Any] = {
        "id": episode.alert_id, "peak_score": episode.peak_score, "peak_at": episode.peak_at,
        "last_score": episode.last_score, "last_window_at": episode.last_window_at,
        "window_count": episode.window_count, "anomalous_count": episode.anomalous_count,
        "sensor_ids": sorted(episode.sensor_ids), "ends_at": episode.ends_at,
        "state": "resolved" if episode.ends_at is not None else "firing",
    }
    row = alert_queries.update_open(conn, values)
    if row is None:
        return
    if row["state"] == "resolved":
        notify.resolved(conn, row)
    elif episode.anomalous_count > 0:
        _lift_suppression(conn, row)


def _lift_suppression(conn: psycopg.Connection, row: dict[str, Any]) -> None:
    """An alert held back because the machine was off is announced once the machine runs
    again and still sounds anomalous: the anomaly then says something about the running
    machine, which is what the suppression was waiting for."""
    if row["suppressed_reason"] is None or row["last_notified_at"] is not None:
        return
    at = row["last_window_at"]
    if suppression_reason(conn, row["machine_id"], at) is not None:
        return  # still off
    row = alert_queries.lift_suppression(conn, row["id"])
    if alert_queries.active_silence(conn, row["machine_id"], at) is None:
        notify.repeat(conn, row)
    # else: the repeat job announces it when the silence ends (it skips suppressed rows).


def _open_episode(ctx: dict[str, Any]) -> Episode | None:
    if ctx["alert_id"] is None:
        return None
    return Episode(alert_id=ctx["alert_id"], peak_score=ctx["peak_score"],
                   peak_at=ctx["peak_at"])


def evaluate_scored(conn: psycopg.Connection, machine_id: UUID, model_version: int,
                    windows: list[ScoredWindow]) -> None:
    """Advance the machine's alert state over freshly scored windows; fire, update and
    resolve its anomaly alert and queue the notifications, all in the caller's
    transaction."""
    if not windows:
        return
    ctx = alert_rules.lock_state(conn, machine_id)
    if ctx is None:
        return
    rule = rule_from_row(ctx)
    if not rule.enabled:
        return
    state = State(ctx["recent"], ctx["consecutive_clear"], ctx["clear_since"],
                  dict(ctx["marks"]))
    fresh = _fresh(windows, state.marks)
    if not fresh:
        return
    episodes = step(rule, state, _open_episode(ctx), fresh)
    alert_rules.save_state(conn, machine_id, state.recent, state.consecutive_clear,
                           state.clear_since, state.marks)
    for episode in episodes:
        if episode.alert_id is not None:
            _update_open(conn, episode)
        else:
            _open_new(conn, machine_id, model_version, rule, episode)


__all__ = ["Episode", "State", "evaluate_scored", "step", "suppression"]
