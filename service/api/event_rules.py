"""`/v1/machines/{id}/event-rules`: which classes announce `event.detected`, the event
detection parameters per class, and the operating state that suppresses anomaly alerts."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter

from detectors.errors import InvalidParamsError
from detectors.events import EventParams, validate_event_params
from service.classification.rules import rule_from_row
from service.deps import AdminDep, ConnDep, ReaderDep, require_machine
from service.errors import UnprocessableError
from service.queries import event_rules
from service.schemas.classification import EventRuleIn, EventRuleOut

router = APIRouter(prefix="/machines/{machine_id}/event-rules", tags=["events"])


def rule_out(machine_id: UUID, row: dict[str, Any] | None) -> EventRuleOut:
    rule = rule_from_row(row)
    return EventRuleOut(
        machine_id=machine_id, notify_labels=list(rule.notify_labels),
        params=rule.default_params.as_dict(),
        class_params={k: v.as_dict() for k, v in sorted(rule.class_params.items())},
        state_label=rule.state_label, state_max_age=rule.state_max_age_s,
        updated_at=row["updated_at"] if row else None)


def _checked(body: EventRuleIn) -> EventParams:
    """The default parameters; a class override is checked together with the defaults it
    inherits (e.g. its `off` against the default `on`). 422 lists every problem."""
    errors: list[str] = []
    try:
        default = validate_event_params(body.params, "params")
    except InvalidParamsError as exc:
        raise UnprocessableError("invalid event parameters: " + "; ".join(exc.errors),
                                 errors=exc.errors) from None
    for label, params in body.class_params.items():
        try:
            validate_event_params({**default.as_dict(), **params}, f"class_params.{label}")
        except InvalidParamsError as exc:
            errors.extend(exc.errors)
    if errors:
        raise UnprocessableError("invalid event parameters: " + "; ".join(errors),
                                 errors=errors)
    return default


@router.put("", response_model=EventRuleOut)
def put_event_rules(machine_id: UUID, body: EventRuleIn, conn: ConnDep,
                    _: AdminDep) -> EventRuleOut:
    default = _checked(body)
    with conn.transaction():
        require_machine(conn, machine_id)
        row = event_rules.upsert_rule(
            conn, machine_id, notify_labels=body.notify_labels,
            default_params=default.as_dict(),
            class_params={k: dict(v) for k, v in body.class_params.items()},
            state_label=body.state_label, state_max_age_s=body.state_max_age)
    return rule_out(machine_id, row)


@router.get("", response_model=EventRuleOut)
def get_event_rules(machine_id: UUID, conn: ConnDep, _: ReaderDep) -> EventRuleOut:
    """The stored rule, or the defaults (`updated_at` null) when there is none."""
    row = event_rules.get_rule(conn, machine_id)
    if row is None:
        require_machine(conn, machine_id)
    return rule_out(machine_id, row)

