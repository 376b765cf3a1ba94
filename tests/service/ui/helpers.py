"""Dashboard test helpers: sign a TestClient in through the form, as a browser does."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

STATE_CHANGING = re.compile(r"hx-(post|put|patch|delete)=|<form[^>]*method=\"post\"", re.I)


def sign_in(client: TestClient, key: str) -> str:
    """Sign in with `key`; the CSRF token the page would send in its htmx headers."""
    client.get("/sign-in")
    csrf = client.cookies.get("csrftoken")
    assert csrf, "the sign-in page sets the CSRF cookie"
    response = client.post("/sign-in", data={"key": key, "csrf_token": csrf},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf


def controls_that_change_state(html: str) -> list[str]:
    """Every htmx write and POST form of a page except the sign-out form."""
    return [html[m.start():m.start() + 80] for m in STATE_CHANGING.finditer(html)
            if "/sign-out" not in html[m.start():m.start() + 80]]
