"""Adds the dashboard to the FastAPI app: its pages, the vendored static files, `/docs`
served from those local files (no CDN), the CSRF and security-header middleware, and the
sign-in redirect."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from service.settings import Settings
from service.ui.auth import SignInRequired, sign_in_required
from service.ui.middleware import Csrf, HtmlSecurityHeaders
from service.ui.pages import alerts, machine, models, overview, setup, signin
from service.ui.render import HERE

VENDOR = "/static/vendor"


def _docs(app: FastAPI) -> None:
    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title="Earshot API",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


def mount(app: FastAPI, settings: Settings) -> None:
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    _docs(app)
    for module in (signin, overview, machine, alerts, models, setup):
        app.include_router(module.router)
    app.add_exception_handler(SignInRequired, sign_in_required)
    app.add_middleware(HtmlSecurityHeaders)
    app.add_middleware(Csrf, settings=settings)
