"""Webhook event types (the one list: subscriptions are validated against it) and the
payloads: `{"type", "timestamp", "data"}` with the alert (or model) object and links."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

ALERT_FIRING = "alert.firing"
ALERT_RESOLVED = "alert.resolved"
ALERT_ACKNOWLEDGED = "alert.acknowledged"
SENSOR_NO_DATA = "sensor.no_data"
MODEL_TRAINED = "model.trained"
MODEL_FAILED = "model.failed"
# A sound event of a class the machine's event rule names (service.classification.notify).
EVENT_DETECTED = "event.detected"
# Subscriptions accept whatever is listed.
EVENT_TYPES: tuple[str, ...] = (
    ALERT_FIRING, ALERT_RESOLVED, ALERT_ACKNOWLEDGED, SENSOR_NO_DATA, MODEL_TRAINED,
    MODEL_FAILED, EVENT_DETECTED,
)
# Sent only by `POST /v1/webhooks/{id}/test`, to that one endpoint; not subscribable.
WEBHOOK_TEST = "webhook.test"

# Context either side of an alert in its timeline link.
TIMELINE_MARGIN = timedelta(minutes=10)

ALERT_FIELDS = (
    "id", "machine_id", "type", "state", "starts_at", "ends_at", "fired_at", "resolved_at",
    "model_version", "threshold", "clear_level", "peak_score", "peak_at", "last_score",
    "last_window_at", "window_count", "anomalous_count", "sensor_ids", "silenced",
    "silence_id", "suppressed_reason", "acknowledged_at", "acknowledged_by",
    "last_notified_at", "notify_count", "verdict", "feedback_label", "feedback_note",
    "feedback_at",
)


def firing_event(alert_type: str) -> str:
    """The event a newly firing (or repeated) alert of this type is announced with."""
    return SENSOR_NO_DATA if alert_type == "no_data" else ALERT_FIRING


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def link(base_url: str | None, path: str) -> str:
    return (base_url.rstrip("/") + path) if base_url else path


def alert_links(row: dict[str, Any], base_url: str | None) -> dict[str, str]:
    machine_id, alert_id = row["machine_id"], row["id"]
    end = row.get("ends_at") or row.get("last_window_at") or row["starts_at"]
    start_q = _iso(row["starts_at"] - TIMELINE_MARGIN).replace("+", "%2B")
    end_q = _iso(end + TIMELINE_MARGIN).replace("+", "%2B")
    return {
        "self": link(base_url, f"/v1/alerts/{alert_id}"),
        "machine": link(base_url, f"/v1/machines/{machine_id}"),
        "timeline": link(base_url,
                         f"/v1/machines/{machine_id}/timeline?start={start_q}&end={end_q}"),
    }


def alert_object(row: dict[str, Any], base_url: str | None) -> dict[str, Any]:
    """The alert as the API and webhooks show it."""
    obj = {name: row.get(name) for name in ALERT_FIELDS}
    obj["acknowledged"] = row.get("acknowledged_at") is not None
    obj["links"] = alert_links(row, base_url)
    return obj


def model_object(data: dict[str, Any], machine_id: UUID | None,
                 base_url: str | None) -> dict[str, Any]:
    """Model events carry what training passed plus links to the machine's models."""
    obj = dict(data)
    if machine_id is not None:
        obj.setdefault("machine_id", machine_id)
        links = dict(obj.get("links") or {})
        links.setdefault("machine", link(base_url, f"/v1/machines/{machine_id}"))
        links.setdefault("models", link(base_url, f"/v1/machines/{machine_id}/models"))
        obj["links"] = links
    return obj


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__} in a webhook payload")


def _finite(value: Any) -> Any:
    # A non-finite score must not make the payload (and with it the scoring transaction)
    # fail: JSON has no NaN, so it goes out as null.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def body(event_type: str, data: dict[str, Any], timestamp: datetime) -> str:
    """The exact bytes signed and sent (stored once, so every retry is identical)."""
    envelope = {"type": event_type, "timestamp": _iso(timestamp), "data": _finite(data)}
    return json.dumps(envelope, default=_default, separators=(",", ":"), allow_nan=False)
