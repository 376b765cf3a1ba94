"""A machine's event rule as the code uses it, with the defaults (one place: the API, the
events endpoint, the scorer's announcements and the alert engine read them here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detectors.events import DEFAULT_EVENT_PARAMS, EventParams, validate_event_params

DEFAULT_STATE_MAX_AGE_S = 60.0


@dataclass(frozen=True)
class EventRule:
    """`notify_labels`: classes whose events send `event.detected`; `default_params` and
    `class_params`: event detection parameters for every class and per class;
    `state_label`: the operating state (e.g. 'off') that suppresses anomaly alerts while it
    is the latest predicted class, predicted at most `state_max_age_s` before the alert."""

    notify_labels: tuple[str, ...] = ()
    default_params: EventParams = DEFAULT_EVENT_PARAMS
    class_params: dict[str, EventParams] = field(default_factory=dict)
    state_label: str | None = None
    state_max_age_s: float = DEFAULT_STATE_MAX_AGE_S

    def params_for(self, label: str) -> EventParams:
        return self.class_params.get(label, self.default_params)

    def params_by_label(self, labels: list[str]) -> dict[str, EventParams]:
        return {label: self.params_for(label) for label in labels}


DEFAULT_RULE = EventRule()


def rule_from_row(row: dict[str, Any] | None) -> EventRule:
    """The stored rule (validated again: defaults may have changed), or the defaults."""
    if row is None:
        return DEFAULT_RULE
    default = validate_event_params(row["default_params"], "default_params")
    per_class = {label: validate_event_params({**default.as_dict(), **params},
                                              f"class_params.{label}")
                 for label, params in (row["class_params"] or {}).items()}
    return EventRule(tuple(row["notify_labels"] or ()), default, per_class,
                     row["state_label"], float(row["state_max_age_s"]))
