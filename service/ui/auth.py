"""Who is looking at a page: the signed-in session (service.ui.sessions), or a redirect to
the sign-in page. Admin-only pages answer a read session with 403."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.responses import RedirectResponse, Response

from service.deps import ConnDep, SettingsDep, _rate_limit
from service.errors import ForbiddenError
from service.problems import problem
from service.security import Principal
from service.ui import sessions


class SignInRequired(Exception):
    """No live session: pages redirect to /sign-in, htmx requests get 401 + HX-Redirect."""


def ui_principal(request: Request, conn: ConnDep, settings: SettingsDep) -> Principal:
    session_id = request.cookies.get(sessions.COOKIE)
    if session_id:
        _rate_limit(request, session_id)
        found = sessions.principal_for_session(conn, settings, session_id)
        if found is not None:
            return found
    raise SignInRequired


def ui_admin(principal: Annotated[Principal, Depends(ui_principal)]) -> Principal:
    if not principal.is_admin:
        raise ForbiddenError("this page changes settings; sign in with an admin key")
    return principal


UiReader = Annotated[Principal, Depends(ui_principal)]
UiAdmin = Annotated[Principal, Depends(ui_admin)]


def sign_in_required(request: Request, exc: Exception) -> Response:
    target = "/sign-in"
    if request.method == "GET" and request.url.path not in ("/", "/sign-in"):
        target += "?next=" + quote(request.url.path, safe="/")
    if request.headers.get("hx-request") or request.method != "GET":
        return problem(401, "Unauthorized", "sign in first", request.url.path,
                       {"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)
