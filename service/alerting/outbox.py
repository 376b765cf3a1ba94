"""The transactional outbox: an event becomes one message row plus one delivery row per
matching endpoint, in the caller's transaction, so a state change and its notification
commit (or roll back) together. NOTIFY wakes the delivery worker at commit."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from service.alerting import events
from service.queries import webhooks as webhook_queries
from service.settings import get_settings

CHANNEL = "earshot_webhooks"
MESSAGE_PREFIX = "msg_"
SECRET_PREFIX = "whsec_"
MODEL_EVENTS = (events.MODEL_TRAINED, events.MODEL_FAILED)


class UnknownEventError(ValueError):
    """A caller emitted an event type that is not in `events.EVENT_TYPES`."""


def new_secret() -> str:
    """A Standard Webhooks signing secret: `whsec_` + base64 of 256 random bits."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def new_message_id() -> str:
    return MESSAGE_PREFIX + secrets.token_urlsafe(18)


def _store(conn: psycopg.Connection, event_type: str, data: dict[str, Any],
           machine_id: UUID | None, webhook_ids: list[UUID]) -> tuple[str, list[UUID]]:
    message_id = new_message_id()
    body = events.body(event_type, data, datetime.now(UTC))
    delivery_ids = webhook_queries.insert_message(conn, message_id, event_type, machine_id,
                                                  body, webhook_ids)
    webhook_queries.notify(conn, CHANNEL, message_id)
    return message_id, delivery_ids


def enqueue_event(conn: psycopg.Connection, event_type: str, data: dict[str, Any],
                  machine_id: UUID | None) -> str | None:
    """Queue `event_type` for every enabled endpoint subscribed to it (and to the machine).

    Returns the message id, or None when no endpoint wants the event (nothing is stored).
    Never commits: the caller's transaction carries the message with its cause."""
    if event_type not in events.EVENT_TYPES:
        raise UnknownEventError(
            f"unknown webhook event {event_type!r}; known: {', '.join(events.EVENT_TYPES)}")
    webhook_ids = webhook_queries.matching_endpoints(conn, event_type, machine_id)
    if not webhook_ids:
        return None
    if event_type in MODEL_EVENTS:
        data = events.model_object(data, machine_id, get_settings().public_url)
    message_id, _ = _store(conn, event_type, data, machine_id, webhook_ids)
    return message_id


def enqueue_test(conn: psycopg.Connection, webhook_id: UUID) -> tuple[str, UUID]:
    """A `webhook.test` message for one endpoint; its message id and delivery id."""
    data = {"webhook_id": webhook_id, "message": "Earshot test event: signature and "
            "reachability check. No machine is affected."}
    message_id, delivery_ids = _store(conn, events.WEBHOOK_TEST, data, None, [webhook_id])
    return message_id, delivery_ids[0]
