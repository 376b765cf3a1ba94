"""RFC 9457 problem+json for every error: ours, the framework's 404/405/422, and
database outages (503 with Retry-After)."""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from detectors.errors import DetectorError, InsufficientDataError
from ingest.errors import IngestError
from service.errors import ServiceError

log = logging.getLogger("earshot.api")
PROBLEM_TYPE_BASE = "https://earshot.dev/problems/"
RETRY_AFTER_S = "5"


def problem(status: int, title: str, detail: str, instance: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + title.lower().replace(" ", "-"),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type="application/problem+json",
                        headers=headers)


def _validation_detail(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
               "type": str(e.get("type", ""))} for e in exc.errors()]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"]), errors


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        extra = dict(exc.extra)
        headers: dict[str, str] = {}
        if "retry_after" in extra:
            headers["Retry-After"] = str(extra.pop("retry_after"))
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return problem(exc.status, exc.title, exc.detail, request.url.path, headers or None,
                       **extra)

    @app.exception_handler(IngestError)
    async def _ingest(request: Request, exc: IngestError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, request.url.path, window=exc.window)

    @app.exception_handler(DetectorError)
    async def _detector(request: Request, exc: DetectorError) -> JSONResponse:
        status = 409 if isinstance(exc, InsufficientDataError) else 422
        kind = getattr(exc, "kind", "detector")  # classifier errors say "classifier"
        return problem(status, f"Invalid {kind} configuration", str(exc), request.url.path,
                       errors=getattr(exc, "errors", None), valid=getattr(exc, "valid", None))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        title = {404: "Not found", 405: "Method not allowed",
                 413: "Payload too large"}.get(exc.status_code, "HTTP error")
        detail = str(exc.detail)
        if exc.status_code == 413:  # service.bodylimit: a chunked body passed the limit
            limit = request.app.state.settings.max_body_bytes
            detail = (f"the request body exceeds {limit:,} bytes; at most {limit:,} bytes "
                      "are accepted per request (split it)")
        return problem(exc.status_code, title, detail, request.url.path,
                       dict(exc.headers) if exc.headers else None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail, errors = _validation_detail(exc)
        return problem(422, "Invalid request", detail, request.url.path, errors=errors)

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc).__name__)
        return problem(503, "Database unavailable",
                       "the database is not reachable; retry shortly", request.url.path,
                       {"Retry-After": RETRY_AFTER_S})

    @app.exception_handler(psycopg.errors.DiskFull)
    async def _disk_full(request: Request, exc: Exception) -> JSONResponse:
        # The transaction rolled back: nothing of the request was stored.
        log.error("database disk full: %s", type(exc).__name__)
        return problem(507, "Insufficient storage",
                       "the database has no space left to store this; nothing was stored. "
                       "Retry after an operator frees disk space", request.url.path,
                       {"Retry-After": RETRY_AFTER_S})

    @app.exception_handler(psycopg.errors.InsufficientPrivilege)
    async def _storage_refused(request: Request, exc: Exception) -> JSONResponse:
        # Earshot owns its schema: a privilege error means the server cannot use its own
        # files (a read-only or re-permissioned data directory), an operator's problem.
        log.error("database refused access: %s", str(exc).strip().splitlines()[0])
        return problem(503, "Database unavailable",
                       "the database cannot write its storage; nothing was stored. "
                       "Retry later", request.url.path, {"Retry-After": RETRY_AFTER_S})

    @app.exception_handler(psycopg.DataError)
    async def _unstorable(request: Request, exc: Exception) -> JSONResponse:
        # A value that passed validation but that PostgreSQL cannot hold (a NUL character
        # in text, a number out of a column's range): the client's input, not our outage.
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        log.warning("unstorable value: %s", type(exc).__name__)
        return problem(422, "Invalid request",
                       f"a value in the request cannot be stored: {message}", request.url.path)
