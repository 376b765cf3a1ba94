"""Dead-letter rows of ingest paths that cannot answer the sender (the MQTT bridge)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

LIST_FOR_SENSOR = """
SELECT id, sensor_id, topic, source, reason, payload_excerpt, received_at
FROM ingest_errors WHERE sensor_id = %s
ORDER BY received_at DESC, id DESC LIMIT %s OFFSET %s
"""


def list_for_sensor(conn: psycopg.Connection, sensor_id: UUID, limit: int,
                    offset: int) -> list[dict[str, Any]]:
    """Newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(LIST_FOR_SENSOR, (sensor_id, limit, offset)).fetchall()
