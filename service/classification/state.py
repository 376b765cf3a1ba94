"""Operating state: while a machine's configured state class (e.g. `off`) is its latest
predicted class, a new anomaly alert is recorded with `suppressed_reason` and notifies
nobody, the way equipment monitoring treats a machine that is switched off (it sounds
nothing like normal running, and nobody needs paging for that)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import psycopg

from service.classification.rules import rule_from_row
from service.queries import event_rules
from service.queries import predictions as prediction_queries

REASON_PREFIX = "operating_state:"


def suppression_reason(conn: psycopg.Connection, machine_id: UUID,
                       at: datetime) -> str | None:
    """`operating_state:<class>` when the machine's newest prediction at or before `at` is
    its rule's state class and at most `state_max_age_s` old; else None (no rule, no
    state class, no recent prediction: a stale state says nothing about now)."""
    row = event_rules.get_rule(conn, machine_id)
    if row is None or row["state_label"] is None:
        return None
    rule = rule_from_row(row)
    latest = prediction_queries.latest_label(conn, machine_id, at)
    if latest is None:
        return None
    t, label = latest
    if label != rule.state_label or (at - t).total_seconds() > rule.state_max_age_s:
        return None
    return REASON_PREFIX + label
