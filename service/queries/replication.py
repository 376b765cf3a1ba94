"""Streaming-replica state for /readyz: how far the read replica is behind the primary."""

from __future__ import annotations

from typing import Any

import psycopg

CURRENT_LSN = "SELECT pg_current_wal_lsn()::text"
# Bytes of WAL the replica has not replayed yet, measured against the primary's position
# read just before (the replay timestamp alone keeps growing while the primary is idle).
REPLICA_STATE = """
SELECT pg_is_in_recovery(),
       pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn())::bigint,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
"""


def current_lsn(conn: psycopg.Connection) -> str:
    row = conn.execute(CURRENT_LSN).fetchone()
    assert row is not None
    return str(row[0])


def replica_state(conn: psycopg.Connection, primary_lsn: str) -> dict[str, Any]:
    row = conn.execute(REPLICA_STATE, (primary_lsn,)).fetchone()
    assert row is not None
    in_recovery, lag_bytes, replay_age_s = row
    return {"in_recovery": bool(in_recovery),
            "lag_bytes": max(0, int(lag_bytes)) if lag_bytes is not None else None,
            "last_replay_age_s": round(replay_age_s, 3) if replay_age_s is not None else None}
