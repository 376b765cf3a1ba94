"""Liveness, readiness and Prometheus metrics (no authentication: for probes and scrapers)."""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg_pool import ConnectionPool, PoolTimeout

from service.deps import PoolDep, SettingsDep
from service.migrate import pending_versions
from service.queries import replication

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _readiness(conn: psycopg.Connection, settings: SettingsDep) -> dict[str, Any]:
    license_row = conn.execute(
        "SELECT current_setting('timescaledb.license', true), "
        "(SELECT extversion FROM pg_extension WHERE extname = 'timescaledb')").fetchone()
    assert license_row is not None
    pending = pending_versions(conn, settings)
    return {"database": "ok", "timescaledb": {"license": license_row[0],
                                              "version": license_row[1]},
            "migrations": {"pending": pending}}


def _replica(read_pool: ConnectionPool, primary_lsn: str) -> dict[str, Any]:
    """The read replica's state; informational: an unreachable replica fails only the
    reads sent to it, so it does not make the API unready."""
    try:
        with read_pool.connection(timeout=2.0) as conn:
            return {"status": "ok", **replication.replica_state(conn, primary_lsn)}
    except (psycopg.Error, PoolTimeout) as exc:
        return {"status": f"unreachable: {type(exc).__name__}"}


@router.get("/readyz")
def readyz(request: Request, pool: PoolDep, settings: SettingsDep) -> JSONResponse:
    read_pool: ConnectionPool = request.app.state.read_pool
    try:
        with pool.connection(timeout=2.0) as conn:
            checks = _readiness(conn, settings)
            primary_lsn = replication.current_lsn(conn) if read_pool is not pool else None
    except (psycopg.Error, PoolTimeout) as exc:
        body = {"status": "unavailable", "database": f"unreachable: {type(exc).__name__}"}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    if primary_lsn is not None:
        checks["replica"] = _replica(read_pool, primary_lsn)
    ready = not checks["migrations"]["pending"] and checks["timescaledb"]["version"] is not None
    checks["status"] = "ready" if ready else "not ready"
    return JSONResponse(checks, status_code=200 if ready else 503)


@router.get("/metrics")
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
