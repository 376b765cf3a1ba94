"""Dashboard sign-in: an API key (admin or read) or the admin key becomes a server-side
session. The browser holds only a random session id (HttpOnly, SameSite=Strict cookie);
the database holds SHA-256 digests of that id and of the key, and every request derives
the role from the live key, so revoking the key ends its sessions too."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import psycopg
from starlette.requests import Request
from starlette.responses import Response

from service import security
from service.queries import api_keys, ui_sessions
from service.settings import Settings

COOKIE = "earshot_session"


def _admin_digest(settings: Settings) -> bytes | None:
    key = settings.admin_key
    return security.digest(key.get_secret_value()) if key is not None else None


def principal_for_key_hash(conn: psycopg.Connection, settings: Settings,
                           key_hash: bytes) -> security.Principal | None:
    """The admin key or an active API key (admin/read); sensor tokens never sign in."""
    admin = _admin_digest(settings)
    if admin is not None and secrets.compare_digest(admin, key_hash):
        return security.Principal(role="admin")
    found = api_keys.active_role(conn, key_hash)
    if found is None:
        return None
    key_id, role = found
    return security.Principal(role="admin" if role == "admin" else "read", key_id=key_id)


def sign_in(conn: psycopg.Connection, settings: Settings, key: str) -> str | None:
    """A new session id for a valid key, or None. The caller commits."""
    key_hash = security.digest(key.strip())
    if principal_for_key_hash(conn, settings, key_hash) is None:
        return None
    session_id = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(seconds=settings.ui_session_ttl_s)
    ui_sessions.insert(conn, security.digest(session_id), key_hash, expires)
    return session_id


def principal_for_session(conn: psycopg.Connection, settings: Settings,
                          session_id: str) -> security.Principal | None:
    key_hash = ui_sessions.live_key_hash(conn, security.digest(session_id))
    if key_hash is None:
        return None
    return principal_for_key_hash(conn, settings, key_hash)


def sign_out(conn: psycopg.Connection, session_id: str) -> None:
    ui_sessions.revoke(conn, security.digest(session_id))


def set_cookie(response: Response, request: Request, session_id: str,
               settings: Settings) -> None:
    response.set_cookie(COOKIE, session_id, max_age=int(settings.ui_session_ttl_s),
                        httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")


def clear_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
