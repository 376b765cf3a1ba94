"""Per-machine model configuration (`model_configs`): what to train, how often, and how a
new version goes live."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

# The scheduler LISTENs here: 'job:<id>' wakes a job runner, 'config:<machine_id>'
# re-syncs the cron jobs without waiting for the next periodic sync.
JOBS_CHANNEL = "earshot_jobs"

CONFIG_COLUMNS = """
machine_id, target, algorithm, params, threshold, retrain_cron, training_window_s,
activation, backfill_s, updated_at
"""
UPSERT_CONFIG = f"""
INSERT INTO model_configs (machine_id, target, algorithm, params, threshold, retrain_cron,
                           training_window_s, activation, backfill_s, updated_at)
VALUES (%(machine_id)s, %(target)s, %(algorithm)s, %(params)s, %(threshold)s,
        %(retrain_cron)s, %(training_window_s)s, %(activation)s, %(backfill_s)s, now())
ON CONFLICT (machine_id, target) DO UPDATE SET
    algorithm = EXCLUDED.algorithm, params = EXCLUDED.params,
    threshold = EXCLUDED.threshold, retrain_cron = EXCLUDED.retrain_cron,
    training_window_s = EXCLUDED.training_window_s, activation = EXCLUDED.activation,
    backfill_s = EXCLUDED.backfill_s, updated_at = now()
RETURNING {CONFIG_COLUMNS}
"""
SELECT_CONFIG = f"""
SELECT {CONFIG_COLUMNS} FROM model_configs WHERE machine_id = %s AND target = %s
"""
SELECT_CRON_CONFIGS = """
SELECT machine_id, target, retrain_cron FROM model_configs
WHERE retrain_cron IS NOT NULL ORDER BY machine_id, target
"""
NOTIFY_JOBS = "SELECT pg_notify(%s, %s)"



def upsert_config(conn: psycopg.Connection, machine_id: UUID, target: str, *, algorithm: str,
                  params: dict[str, Any], threshold: dict[str, Any], retrain_cron: str | None,
                  training_window_s: float | None, activation: str,
                  backfill_s: float) -> dict[str, Any]:
    values = {"machine_id": machine_id, "target": target, "algorithm": algorithm,
              "params": Jsonb(params), "threshold": Jsonb(threshold),
              "retrain_cron": retrain_cron, "training_window_s": training_window_s,
              "activation": activation, "backfill_s": backfill_s}
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(UPSERT_CONFIG, values).fetchone()
    assert row is not None
    return row


def get_config(conn: psycopg.Connection, machine_id: UUID,
               target: str = "detector") -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(SELECT_CONFIG, (machine_id, target)).fetchone()


def cron_configs(conn: psycopg.Connection) -> list[tuple[UUID, str, str]]:
    """(machine_id, target, retrain_cron) of every config that retrains on a schedule."""
    return [(r[0], r[1], r[2]) for r in conn.execute(SELECT_CRON_CONFIGS).fetchall()]


def notify_scheduler(conn: psycopg.Connection, payload: str) -> None:
    """Delivered on commit, so the scheduler never sees a row that is not there yet."""
    conn.execute(NOTIFY_JOBS, (JOBS_CHANNEL, payload))
