"""`/sign-in` and `/sign-out`: an API key typed into a password field becomes a
server-side session. The key travels only in the POST body, is never echoed back, never
logged and never put in a URL."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from service.deps import ConnDep, SettingsDep
from service.ui import sessions
from service.ui.auth import UiReader
from service.ui.middleware import CSRF_COOKIE
from service.ui.render import page

router = APIRouter(include_in_schema=False)


def _safe_next(target: str | None) -> str:
    """Only a path of this site: never an absolute or scheme-relative URL."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None) -> Response:
    return page(request, "signin.html", None, next=_safe_next(next))


@router.post("/sign-in")
def sign_in(request: Request, conn: ConnDep, settings: SettingsDep,
            key: Annotated[str, Form(max_length=512)],
            csrf_token: Annotated[str, Form(max_length=1024)] = "",
            next: Annotated[str, Form(max_length=1000)] = "/") -> Response:
    # Double submit (the form field equals the cookie): no other site can sign a browser
    # in with its own key.
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie.encode(), csrf_token.encode()):
        return page(request, "signin.html", None, status=403, next=_safe_next(next),
                    error="The form expired: please sign in again.")
    with conn.transaction():
        session_id = sessions.sign_in(conn, settings, key)
    if session_id is None:
        return page(request, "signin.html", None, status=401, next=_safe_next(next),
                    error="That key is not valid (unknown, revoked, or a sensor token).")
    response = RedirectResponse(_safe_next(next), status_code=303)
    sessions.set_cookie(response, request, session_id, settings)
    return response


@router.post("/sign-out")
def sign_out(request: Request, conn: ConnDep, _: UiReader) -> Response:
    session_id = request.cookies.get(sessions.COOKIE, "")
    with conn.transaction():
        sessions.sign_out(conn, session_id)
    response: Response = RedirectResponse("/sign-in", status_code=303)
    if request.headers.get("hx-request"):
        response = Response(status_code=204, headers={"HX-Redirect": "/sign-in"})
    sessions.clear_cookie(response, request)
    return response
