"""A machine's alert rule, its defaults (one place: the API and the engine read them here)
and the hysteresis arithmetic."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MAX_N = 62  # the last n window flags live in one signed 64-bit ring (alert_state.recent)


@dataclass(frozen=True)
class Rule:
    """Fire when >= k of the last n windows are anomalous; resolve after `clear_windows`
    consecutive windows below the clear level; re-notify an unacknowledged firing alert
    every `repeat_interval_s` (None: never); raise `no_data` when a sensor of a machine
    with an active model is silent for `no_data_s` (None: never)."""

    enabled: bool = True
    k: int = 3
    n: int = 5
    clear_ratio: float = 0.9
    clear_windows: int = 10
    repeat_interval_s: float | None = 3600.0
    no_data_s: float | None = 300.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_RULE = Rule()
RULE_FIELDS = tuple(DEFAULT_RULE.as_dict())


def rule_from_row(row: dict[str, Any] | None) -> Rule:
    """The stored rule, or the defaults when the machine has none."""
    if row is None or row.get("k") is None:
        return DEFAULT_RULE
    return Rule(**{name: row[name] for name in RULE_FIELDS})


def clear_level(threshold: float, clear_ratio: float) -> float:
    """The level a score must drop below to count towards resolution.

    `clear_ratio * threshold` for positive thresholds; written as a distance below the
    threshold so it stays *below* it for the negative thresholds some detectors calibrate
    (isolation-forest style scores), where `ratio * threshold` would lie above it."""
    return threshold - (1.0 - clear_ratio) * abs(threshold)
