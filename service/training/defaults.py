"""The detector a machine gets when nobody chose one: `POST /train` on a machine without a
detector config stores the recommended one (`detectors.registry.RECOMMENDED`, default
parameters and threshold, train on request, activate at once), so the public path
"create machine and sensor, upload baseline audio, train, upload, read scores" needs no
other call, and `GET /v1/machines/{id}/detector` shows afterwards what was chosen."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from service.queries import model_configs
from service.schemas.detectors import DEFAULT_BACKFILL_S

TARGET = "detector"


def recommended_detector(conn: psycopg.Connection, machine_id: UUID) -> dict[str, Any]:
    """Store and return the recommended detector config for `machine_id` (in the caller's
    transaction)."""
    from detectors import registry  # the ML stack: imported on first use only

    name = registry.RECOMMENDED
    return model_configs.upsert_config(
        conn, machine_id, TARGET, algorithm=name, params=registry.validate_params(name, {}),
        threshold=registry.validate_threshold({}), retrain_cron=None, training_window_s=None,
        activation="auto", backfill_s=DEFAULT_BACKFILL_S)
