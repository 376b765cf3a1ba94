"""Request dependencies as `Annotated` aliases: the pool, a connection, the settings and
the caller's principal with the role checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated
from uuid import UUID

import psycopg
from fastapi import Depends, Header, Request
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from service import security
from service.errors import ForbiddenError, NotFoundError, RateLimitedError, UnauthorizedError
from service.queries import api_keys, machines
from service.queries import sensors as sensor_queries
from service.ratelimit import RateLimiter, retry_after_header
from service.settings import Settings
from service.ui import sessions


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def get_pool(request: Request) -> ConnectionPool:
    pool: ConnectionPool = request.app.state.pool
    return pool


PoolDep = Annotated[ConnectionPool, Depends(get_pool)]


def get_conn(pool: PoolDep) -> Iterator[psycopg.Connection]:
    with pool.connection() as conn:
        yield conn


ConnDep = Annotated[psycopg.Connection, Depends(get_conn)]


def require_machine(conn: psycopg.Connection, machine_id: UUID) -> None:
    """The 404 of every machine-scoped route whose machine does not exist."""
    if not machines.exists(conn, machine_id):
        raise NotFoundError(f"machine {machine_id} does not exist")


def get_read_conn(request: Request) -> Iterator[psycopg.Connection]:
    """A connection for heavy reads: to the replica (EARSHOT_DATABASE_READ_URL) if one is
    configured, else the primary. Never for a read that must see the caller's own write."""
    pool: ConnectionPool = request.app.state.read_pool
    with pool.connection() as conn:
        yield conn


ReadConnDep = Annotated[psycopg.Connection, Depends(get_read_conn)]


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise UnauthorizedError("missing Authorization: Bearer <token> header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("Authorization header must be 'Bearer <token>'")
    return token.strip()


def _rate_limit(request: Request, token: str) -> None:
    limiter: RateLimiter = request.app.state.rate_limiter
    wait_s = limiter.acquire(security.digest(token))
    if wait_s > 0:
        raise RateLimitedError("too many requests for this token; slow down",
                               retry_after=retry_after_header(wait_s))


def _session_principal(request: Request, conn: psycopg.Connection,
                       settings: Settings) -> security.Principal | None:
    """The dashboard's session cookie (service.ui.sessions); state-changing requests that
    carry it passed the CSRF check (service.ui.csrf) before reaching here."""
    session_id = request.cookies.get(sessions.COOKIE)
    if not session_id:
        return None
    _rate_limit(request, session_id)
    return sessions.principal_for_session(conn, settings, session_id)


def get_principal(
    request: Request,
    conn: ConnDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> security.Principal:
    if authorization is None:
        from_session = _session_principal(request, conn, settings)
        if from_session is not None:
            return from_session
    token = _bearer(authorization)
    _rate_limit(request, token)
    return _admin_principal(settings, token) or lookup_principal(conn, token)


async def cached_principal(
    request: Request,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> security.Principal:
    """`get_principal` for the ingest hot path: a token seen within `auth_cache_s` costs no
    database lookup (README, Guarantees: the revocation bound), and a lookup holds a pooled
    connection only for the query, never while a body arrives. Runs on the event loop."""
    if authorization is None and request.cookies.get(sessions.COOKIE):
        from_session = await run_in_threadpool(_pooled_session, request, settings)
        if from_session is not None:
            return from_session
    token = _bearer(authorization)
    _rate_limit(request, token)
    admin = _admin_principal(settings, token)
    if admin is not None:
        return admin
    cache: security.PrincipalCache = request.app.state.principal_cache
    token_hash = security.digest(token)
    principal = cache.get(token_hash)
    if principal is None:
        principal = await run_in_threadpool(_pooled_lookup, request.app.state.pool, token)
        cache.put(token_hash, principal)
    return principal


def _pooled_session(request: Request, settings: Settings) -> security.Principal | None:
    with request.app.state.pool.connection() as conn:
        return _session_principal(request, conn, settings)


def _pooled_lookup(pool: ConnectionPool, token: str) -> security.Principal:
    with pool.connection() as conn:
        return lookup_principal(conn, token)


def _admin_principal(settings: Settings, token: str) -> security.Principal | None:
    admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
    if admin_key is not None and security.same_secret(token, admin_key):
        return security.Principal(role="admin")
    return None


def lookup_principal(conn: psycopg.Connection, token: str) -> security.Principal:
    """The stored credential's principal; 401 for an unknown, revoked or rotated token."""
    token_hash = security.digest(token)
    if token.startswith(security.INGEST_TOKEN_PREFIX):
        sensor_id = sensor_queries.sensor_for_token(conn, token_hash)
        if sensor_id is not None:
            return security.Principal(role="sensor", sensor_id=sensor_id)
    else:
        found = api_keys.active_role(conn, token_hash)
        if found is not None:
            key_id, role = found
            return security.Principal(role="admin" if role == "admin" else "read", key_id=key_id)
    raise UnauthorizedError("the token is not valid (unknown, revoked or rotated)")


PrincipalDep = Annotated[security.Principal, Depends(get_principal)]


def require_read(principal: PrincipalDep) -> security.Principal:
    if not principal.can_read:
        raise ForbiddenError("this token cannot read; use an API key with role 'read' or 'admin'")
    return principal


def require_admin(principal: PrincipalDep) -> security.Principal:
    if not principal.is_admin:
        raise ForbiddenError("this action needs an API key with role 'admin'")
    return principal


ReaderDep = Annotated[security.Principal, Depends(require_read)]
AdminDep = Annotated[security.Principal, Depends(require_admin)]
