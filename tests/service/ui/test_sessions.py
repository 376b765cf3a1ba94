"""Sign-in: the key becomes a server-side session in an HttpOnly SameSite=Strict cookie
(Secure over HTTPS); the key is never echoed; sign-out and key revocation end the session;
state-changing requests carrying the session need the CSRF header."""

from __future__ import annotations

import psycopg
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.service.ui.helpers import sign_in

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _set_cookie(response: object, name: str) -> str:
    headers = response.headers.get_list("set-cookie")  # type: ignore[attr-defined]
    return next(h for h in headers if h.startswith(name + "="))


def test_sign_in_makes_a_strict_httponly_session_and_never_echoes_the_key(
        app_client: TestClient, conn: psycopg.Connection) -> None:
    key = app_client.post("/v1/api-keys", json={"name": "ops", "role": "admin"},
                          headers=ADMIN).json()["key"]
    page = app_client.get("/sign-in")
    assert page.status_code == 200 and 'type="password"' in page.text
    csrf = app_client.cookies["csrftoken"]
    signed = app_client.post("/sign-in", data={"key": key, "csrf_token": csrf},
                             follow_redirects=False)
    assert signed.status_code == 303 and signed.headers["location"] == "/"
    cookie = _set_cookie(signed, "earshot_session").lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    assert key not in signed.headers.get("location", "") and key not in signed.text
    overview = app_client.get("/")
    assert overview.status_code == 200 and key not in overview.text
    (stored,) = conn.execute("SELECT id_hash, key_hash FROM ui_sessions").fetchall()
    session_id = app_client.cookies["earshot_session"]
    assert session_id.encode() not in bytes(stored[0]) and len(bytes(stored[0])) == 32
    assert key.encode() not in bytes(stored[1])


def test_the_session_cookie_is_secure_over_https(settings: Settings) -> None:
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        first = client.get("/sign-in")
        assert "secure" in _set_cookie(first, "csrftoken").lower()
        signed = client.post("/sign-in", data={"key": ADMIN_KEY,
                                               "csrf_token": client.cookies["csrftoken"]},
                             follow_redirects=False)
        assert "secure" in _set_cookie(signed, "earshot_session").lower()


def test_wrong_keys_and_sensor_tokens_do_not_sign_in(app_client: TestClient) -> None:
    machine = app_client.post("/v1/machines", json={"name": "m", "kind": "pump"},
                              headers=ADMIN).json()
    sensor = app_client.post(f"/v1/machines/{machine['id']}/sensors",
                             json={"name": "mic", "embedding": {"kind": "logmel-v1"}},
                             headers=ADMIN).json()
    app_client.get("/sign-in")
    for key in ("esk_" + "x" * 43, sensor["ingest_token"]):
        refused = app_client.post("/sign-in", data={
            "key": key, "csrf_token": app_client.cookies["csrftoken"]})
        assert refused.status_code == 401 and "not valid" in refused.text
        assert key not in refused.text and "earshot_session" not in app_client.cookies


def test_the_sign_in_form_needs_its_csrf_token(app_client: TestClient) -> None:
    app_client.get("/sign-in")
    refused = app_client.post("/sign-in", data={"key": ADMIN_KEY, "csrf_token": "forged"})
    assert refused.status_code == 403 and "earshot_session" not in app_client.cookies


def test_sign_out_ends_the_session_on_the_server(app_client: TestClient) -> None:
    csrf = sign_in(app_client, ADMIN_KEY)
    session = app_client.cookies["earshot_session"]
    assert app_client.get("/v1/machines").status_code == 200  # the API takes the session
    out = app_client.post("/sign-out", headers={"x-csrftoken": csrf}, follow_redirects=False)
    assert out.status_code == 303
    replay = {"Cookie": f"earshot_session={session}; csrftoken={csrf}"}
    app_client.cookies.clear()
    page = app_client.get("/", headers=replay, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/sign-in"
    assert app_client.get("/v1/machines", headers=replay).status_code == 401


def test_revoking_the_key_ends_its_sessions(app_client: TestClient) -> None:
    created = app_client.post("/v1/api-keys", json={"name": "r", "role": "read"},
                              headers=ADMIN).json()
    sign_in(app_client, created["key"])
    assert app_client.get("/").status_code == 200
    browser = dict(app_client.cookies)
    app_client.cookies.clear()  # the operator revokes it from elsewhere, with a bearer key
    assert app_client.delete(f"/v1/api-keys/{created['id']}", headers=ADMIN).status_code == 200
    app_client.cookies.update(browser)
    assert app_client.get("/", follow_redirects=False).status_code == 303


def test_state_changes_with_the_session_need_the_csrf_header(app_client: TestClient) -> None:
    csrf = sign_in(app_client, ADMIN_KEY)
    refused = app_client.post("/v1/machines", json={"name": "a", "kind": "pump"})
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert "CSRF" in refused.json()["detail"]
    forged = app_client.post("/v1/machines", json={"name": "a", "kind": "pump"},
                             headers={"x-csrftoken": "forged"})
    assert forged.status_code == 403
    made = app_client.post("/v1/machines", json={"name": "a", "kind": "pump"},
                           headers={"x-csrftoken": csrf})
    assert made.status_code == 201
    app_client.cookies.clear()  # an API client with a bearer token is not a browser
    assert app_client.post("/v1/machines", json={"name": "b", "kind": "pump"},
                           headers=ADMIN).status_code == 201


def test_pages_redirect_to_sign_in_and_keep_only_local_targets(app_client: TestClient) -> None:
    page = app_client.get("/alerts", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "/sign-in?next=/alerts"
    htmx = app_client.get("/alerts", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/sign-in")
    app_client.get("/sign-in")
    signed = app_client.post("/sign-in", data={
        "key": ADMIN_KEY, "csrf_token": app_client.cookies["csrftoken"],
        "next": "//evil.example/x"}, follow_redirects=False)
    assert signed.headers["location"] == "/"


def test_a_cookieless_api_call_gets_no_csrf_cookie_and_a_cookied_one_is_still_checked(
        app_client: TestClient) -> None:
    made = app_client.post("/v1/machines", json={"name": "c", "kind": "pump"}, headers=ADMIN)
    assert made.status_code == 201 and "set-cookie" not in made.headers
    assert not app_client.cookies
    page = app_client.get("/sign-in")  # an HTML page still hands out the token
    assert _set_cookie(page, "csrftoken")
    csrf = sign_in(app_client, ADMIN_KEY)
    assert app_client.post("/v1/machines", json={"name": "d", "kind": "pump"}
                           ).status_code == 403  # the session cookie, no header
    assert app_client.post("/v1/machines", json={"name": "d", "kind": "pump"},
                           headers={"x-csrftoken": csrf}).status_code == 201
