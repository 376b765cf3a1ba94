from __future__ import annotations

from uuid import UUID

import psycopg

SELECT_SENSOR_BY_TOKEN = "SELECT id FROM sensors WHERE token_hash = %s"


def sensor_for_token(conn: psycopg.Connection, token_hash: bytes) -> UUID | None:
    row = conn.execute(SELECT_SENSOR_BY_TOKEN, (token_hash,)).fetchone()
    return row[0] if row else None
