"""Alert rules per machine (`/v1/machines/{id}/alert-rule`) and alerts (`/v1/alerts`):
list, detail, acknowledge, feedback."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import AwareDatetime

from service.alerting import events, notify
from service.alerting.rules import rule_from_row
from service.deps import AdminDep, ConnDep, ReaderDep, SettingsDep, require_machine
from service.errors import ConflictError, NotFoundError, UnprocessableError
from service.queries import alert_rules
from service.queries import alerts as alert_queries
from service.schemas.alerts import AlertList, AlertOut, AlertRuleIn, AlertRuleOut, FeedbackIn
from service.schemas.common import Limit, Offset
from service.security import Principal

router = APIRouter(tags=["alerts"])


def _rule_out(machine_id: UUID, row: dict[str, Any] | None) -> AlertRuleOut:
    rule = rule_from_row(row)
    return AlertRuleOut(**rule.as_dict(), machine_id=machine_id, is_default=row is None,
                        updated_at=row["updated_at"] if row else None)


@router.get("/machines/{machine_id}/alert-rule", response_model=AlertRuleOut)
def get_rule(machine_id: UUID, conn: ConnDep, _: ReaderDep) -> AlertRuleOut:
    require_machine(conn, machine_id)
    return _rule_out(machine_id, alert_rules.get_rule(conn, machine_id))


@router.put("/machines/{machine_id}/alert-rule", response_model=AlertRuleOut)
def put_rule(machine_id: UUID, body: AlertRuleIn, conn: ConnDep, _: AdminDep) -> AlertRuleOut:
    with conn.transaction():
        require_machine(conn, machine_id)
        row = alert_rules.upsert_rule(conn, machine_id, body.model_dump())
    return _rule_out(machine_id, row)


def _out(row: dict[str, Any], settings: SettingsDep) -> AlertOut:
    return AlertOut(**events.alert_object(row, settings.public_url))


@router.get("/alerts", response_model=AlertList)
def list_alerts(
    conn: ConnDep, settings: SettingsDep, _: ReaderDep,
    machine_id: UUID | None = None,
    state: Literal["firing", "resolved"] | None = None,
    type: Literal["anomaly", "no_data"] | None = None,
    acknowledged: bool | None = None,
    start: Annotated[AwareDatetime | None, Query(description="alerts ending at/after")] = None,
    end: Annotated[AwareDatetime | None, Query(description="alerts starting before")] = None,
    limit: Limit = 100, offset: Offset = 0,
) -> AlertList:
    if start is not None and end is not None and end <= start:
        raise UnprocessableError("end must be after start")
    filters = {"machine_id": machine_id, "state": state, "type": type,
               "acknowledged": acknowledged, "start": start, "end": end}
    rows = alert_queries.list_alerts(conn, filters, limit + 1, offset)
    more = len(rows) > limit
    return AlertList(items=[_out(r, settings) for r in rows[:limit]], limit=limit,
                     offset=offset, next_offset=offset + limit if more else None)


def _alert(conn: ConnDep, alert_id: UUID) -> dict[str, Any]:
    row = alert_queries.get(conn, alert_id)
    if row is None:
        raise NotFoundError(f"alert {alert_id} does not exist")
    return row


@router.get("/alerts/{alert_id}", response_model=AlertOut)
def get_alert(alert_id: UUID, conn: ConnDep, settings: SettingsDep, _: ReaderDep) -> AlertOut:
    return _out(_alert(conn, alert_id), settings)


def _actor(principal: Principal) -> str:
    return f"api-key:{principal.key_id}" if principal.key_id else "admin-key"


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut)
def acknowledge(alert_id: UUID, conn: ConnDep, settings: SettingsDep,
                principal: AdminDep) -> AlertOut:
    """Stops repeat notifications; idempotent (a second ack changes nothing)."""
    with conn.transaction():
        row = alert_queries.acknowledge(conn, alert_id, _actor(principal))
        if row is None:
            return _out(_alert(conn, alert_id), settings)
        notify.acknowledged(conn, row)
    return _out(row, settings)


@router.post("/alerts/{alert_id}/feedback", response_model=AlertOut)
def feedback(alert_id: UUID, body: FeedbackIn, conn: ConnDep, settings: SettingsDep,
             _: AdminDep) -> AlertOut:
    """`false_positive`: the alert's windows count as normal operation at the next
    training; `confirmed`: they are kept out of training. The latest verdict wins."""
    with conn.transaction():
        if _alert(conn, alert_id)["type"] != "anomaly":
            raise ConflictError("feedback applies to anomaly alerts; a no_data alert has "
                                "no scored windows")
        row = alert_queries.set_feedback(conn, alert_id, body.verdict, body.label, body.note)
    assert row is not None
    return _out(row, settings)
