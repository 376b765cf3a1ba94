"""`/v1/webhooks`: endpoints (the signing secret is shown once), test events, deliveries
and redelivery. Targets are checked after DNS resolution here and again at every send."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from fastapi import APIRouter, status

from service.alerting import outbox, targets
from service.deps import AdminDep, ConnDep, SettingsDep
from service.errors import ConflictError, NotFoundError, UnprocessableError
from service.queries import webhooks as webhook_queries
from service.schemas.common import Limit, Offset
from service.schemas.webhooks import (
    DeliveryList,
    DeliveryOut,
    TestQueued,
    WebhookCreate,
    WebhookCreated,
    WebhookList,
    WebhookOut,
    WebhookPatch,
)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def _check_machines(conn: ConnDep, machine_ids: list[UUID] | None) -> None:
    missing = webhook_queries.missing_machines(conn, machine_ids) if machine_ids else []
    if missing:
        raise UnprocessableError(
            f"machine_ids: unknown machine(s) {', '.join(map(str, missing))}")


def _webhook(conn: ConnDep, webhook_id: UUID) -> WebhookOut:
    row = webhook_queries.get(conn, webhook_id)
    if row is None:
        raise NotFoundError(f"webhook {webhook_id} does not exist")
    return WebhookOut(**row)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WebhookCreated)
def create_webhook(body: WebhookCreate, conn: ConnDep, settings: SettingsDep,
                   _: AdminDep) -> WebhookCreated:
    targets.resolve(body.url, allow_private=settings.webhook_allow_private)
    secret = outbox.new_secret()
    with conn.transaction():
        _check_machines(conn, body.machine_ids)
        row = webhook_queries.insert(conn, body.url, body.events, body.machine_ids,
                                     body.description, secret)
    return WebhookCreated(**row, secret=secret)


@router.get("", response_model=WebhookList)
def list_webhooks(conn: ConnDep, _: AdminDep, limit: Limit = 100,
                  offset: Offset = 0) -> WebhookList:
    rows = webhook_queries.list_webhooks(conn, limit + 1, offset)
    more = len(rows) > limit
    return WebhookList(items=[WebhookOut(**r) for r in rows[:limit]], limit=limit,
                       offset=offset, next_offset=offset + limit if more else None)


@router.get("/{webhook_id}", response_model=WebhookOut)
def get_webhook(webhook_id: UUID, conn: ConnDep, _: AdminDep) -> WebhookOut:
    return _webhook(conn, webhook_id)


@router.patch("/{webhook_id}", response_model=WebhookOut)
def patch_webhook(webhook_id: UUID, body: WebhookPatch, conn: ConnDep, settings: SettingsDep,
                  _: AdminDep) -> WebhookOut:
    changes = body.model_dump(exclude_unset=True)
    for name in ("url", "events", "enabled"):
        if name in changes and changes[name] is None:
            raise UnprocessableError(f"{name} cannot be null")
    if "url" in changes:
        targets.resolve(changes["url"], allow_private=settings.webhook_allow_private)
    with conn.transaction():
        _check_machines(conn, changes.get("machine_ids"))
        row = webhook_queries.update(conn, webhook_id, changes)
    if row is None:
        raise NotFoundError(f"webhook {webhook_id} does not exist")
    return WebhookOut(**row)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_webhook(webhook_id: UUID, conn: ConnDep, _: AdminDep) -> None:
    with conn.transaction():
        deleted = webhook_queries.delete(conn, webhook_id)
    if not deleted:
        raise NotFoundError(f"webhook {webhook_id} does not exist")


@router.post("/{webhook_id}/test", status_code=status.HTTP_202_ACCEPTED,
             response_model=TestQueued)
def send_test(webhook_id: UUID, conn: ConnDep, _: AdminDep) -> TestQueued:
    """Queue a signed `webhook.test` message to this endpoint; follow it in deliveries."""
    with conn.transaction():
        if not _webhook(conn, webhook_id).enabled:
            raise ConflictError(f"webhook {webhook_id} is disabled; enable it first")
        message_id, delivery_id = outbox.enqueue_test(conn, webhook_id)
    return TestQueued(message_id=message_id, delivery_id=delivery_id)


@router.get("/{webhook_id}/deliveries", response_model=DeliveryList)
def list_deliveries(webhook_id: UUID, conn: ConnDep, _: AdminDep,
                    state: Literal["pending", "delivered", "failed"] | None = None,
                    limit: Limit = 100, offset: Offset = 0) -> DeliveryList:
    _webhook(conn, webhook_id)
    rows = webhook_queries.list_deliveries(conn, webhook_id, state, limit + 1, offset)
    more = len(rows) > limit
    return DeliveryList(items=[DeliveryOut.from_row(r) for r in rows[:limit]], limit=limit,
                        offset=offset, next_offset=offset + limit if more else None)


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver",
             status_code=status.HTTP_202_ACCEPTED, response_model=DeliveryOut)
def redeliver(webhook_id: UUID, delivery_id: UUID, conn: ConnDep, _: AdminDep) -> DeliveryOut:
    """Send the same message (same webhook-id) again, with a fresh retry window."""
    with conn.transaction():
        if not _webhook(conn, webhook_id).enabled:
            raise ConflictError(f"webhook {webhook_id} is disabled; enable it first")
        row = webhook_queries.redeliver(conn, webhook_id, delivery_id)
        if row is None:
            raise NotFoundError(f"delivery {delivery_id} does not exist for webhook "
                                f"{webhook_id}")
        webhook_queries.notify(conn, outbox.CHANNEL, row["message_id"])
    return DeliveryOut.from_row({**row, "recent_attempts": []})
