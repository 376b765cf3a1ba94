"""Browser-facing protections: starlette-csrf's double-submit check on every
state-changing request that carries the dashboard session cookie (API clients with a
bearer token and no cookie are not browsers and are not checked), and the security
headers of HTML pages (a strict Content-Security-Policy: only the app's own scripts,
styles, images and media)."""

from __future__ import annotations

import hashlib
import http.cookies
import secrets

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette_csrf import CSRFMiddleware

from service.problems import problem
from service.settings import Settings
from service.ui.sessions import COOKIE as SESSION_COOKIE

CSRF_COOKIE = "csrftoken"
CSRF_HEADER = "x-csrftoken"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
       "media-src 'self' blob:; connect-src 'self'; font-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
HTML_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
                "referrer-policy": "no-referrer", "x-frame-options": "DENY",
                "cache-control": "no-store"}
# Swagger UI's page (FastAPI's get_swagger_ui_html) boots with an inline script.
CSP_EXEMPT_PATHS = ("/docs", "/docs/oauth2-redirect")


def csrf_secret(settings: Settings) -> str:
    """Shared by every API process: from EARSHOT_UI_SECRET or derived from the admin key."""
    if settings.ui_secret is not None:
        return settings.ui_secret.get_secret_value()
    if settings.admin_key is not None:
        seed = "earshot-ui-csrf:" + settings.admin_key.get_secret_value()
        return hashlib.sha256(seed.encode()).hexdigest()
    return secrets.token_hex(32)


class Csrf(CSRFMiddleware):
    """starlette-csrf with a problem+json refusal, the token known to the page that sets
    it (request.state.csrf_token, so a form can carry it in hx-headers) and the cookie set
    only on HTML pages, SameSite=Strict, Secure behind HTTPS."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        super().__init__(app, csrf_secret(settings), sensitive_cookies={SESSION_COOKIE},
                         cookie_name=CSRF_COOKIE, header_name=CSRF_HEADER,
                         cookie_samesite="strict")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/v1/"):
            # Pages hand the token to their forms; the JSON API never renders one, so an
            # API request mints none (it cost a signed random token per sensor request:
            # BENCHMARKS.md, ingest). The check below still applies to every request.
            cookie = Request(scope).cookies.get(self.cookie_name)
            state = scope.setdefault("state", {})
            state["csrf_new"] = cookie is None
            state["csrf_token"] = cookie or self._generate_csrf_token()
        await super().__call__(scope, receive, send)

    async def send(self, message: Message, send: Send, scope: Scope) -> None:
        state = scope.get("state", {})
        if message["type"] == "http.response.start" and state.get("csrf_new"):
            headers = MutableHeaders(scope=message)
            if headers.get("content-type", "").startswith("text/html"):
                cookie: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
                cookie[self.cookie_name] = state["csrf_token"]
                cookie[self.cookie_name]["path"] = "/"
                cookie[self.cookie_name]["samesite"] = "Strict"
                cookie[self.cookie_name]["secure"] = scope.get("scheme") == "https"
                headers.append("set-cookie", cookie.output(header="").strip())
        await send(message)

    def _get_error_response(self, request: Request) -> Response:
        return problem(403, "Forbidden", "CSRF check failed: a signed-in browser request "
                       f"that changes state must send the {CSRF_HEADER} header equal to the "
                       f"{CSRF_COOKIE} cookie (reload the page)", request.url.path)


class HtmlSecurityHeaders:
    """Adds HTML_HEADERS to every text/html response (pure ASGI, no body buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in CSP_EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if headers.get("content-type", "").startswith("text/html"):
                    for name, value in HTML_HEADERS.items():
                        headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)
