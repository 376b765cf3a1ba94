"""Templates and the helpers every page uses: one Jinja2 environment (autoescaping on),
time and number filters, and `page()` adding who is signed in and the CSRF token."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import Response

from service.security import Principal

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
HEALTH_LABELS = {"ok": "OK", "watch": "Watch", "alarm": "Alarm", "no_data": "No data",
                 "untrained": "Untrained"}


def ago(value: datetime | None) -> str:
    """"3 min ago" for a past instant (the page also shows the exact time in a title)."""
    if value is None:
        return "never"
    seconds = int((datetime.now(UTC) - value).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else ""


def num(value: float | None, digits: int = 3) -> str:
    return "\u2013" if value is None else f"{value:.{digits}g}"  # an en dash


templates.env.filters.update(ago=ago, iso=iso, num=num)
templates.env.globals.update(health_labels=HEALTH_LABELS)


def page(request: Request, name: str, principal: Principal | None, status: int = 200,
         **context: Any) -> Response:
    context.update(principal=principal, csrf_token=getattr(request.state, "csrf_token", ""),
                   is_admin=bool(principal and principal.is_admin))
    return templates.TemplateResponse(request, name, context, status_code=status)
