"""Every dashboard page renders from the service's own queries, for admin and read
sessions alike; a read session sees no control that changes state; health agrees with
alerts on the page and in the API; pages carry a strict CSP and load nothing remote."""

from __future__ import annotations

import re
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from service.ui.pages import overview
from tests.conftest import ADMIN_KEY
from tests.service.alerting.conftest import feed, make_machine, now_s
from tests.service.alerting.test_lifecycle import activate_model
from tests.service.ui.helpers import controls_that_change_state, sign_in

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def _firing_machine(conn: psycopg.Connection) -> tuple[str, str]:
    """A machine whose newest windows are normal while its anomaly alert still fires."""
    machine_id, (sensor,) = make_machine(conn)
    activate_model(conn, machine_id)
    t = feed(conn, machine_id, sensor, now_s() - timedelta(seconds=40), [3.0] * 5, 1.0)
    feed(conn, machine_id, sensor, t, [0.1] * 8, 1.0)  # fewer than clear_windows: firing
    (alert_id,) = conn.execute("SELECT id FROM alerts WHERE state = 'firing'").fetchone()
    return str(machine_id), str(alert_id)


def _pages(machine_id: str, alert_id: str) -> list[str]:
    return ["/", f"/machines/{machine_id}", f"/machines/{machine_id}/models", "/alerts",
            f"/alerts/{alert_id}", "/alerts?state=firing&acknowledged=no"]


def test_a_firing_anomaly_alert_is_alarm_in_the_api_and_on_the_page(
        app_client: TestClient, conn: psycopg.Connection) -> None:
    machine_id, alert_id = _firing_machine(conn)
    quiet_id, _ = make_machine(conn)
    activate_model(conn, quiet_id)
    health = app_client.get(f"/v1/machines/{machine_id}/health", headers=ADMIN).json()
    assert health["state"] == "alarm", health  # the newest windows alone would say ok
    assert health["recent"]["anomalous"] * 2 < health["recent"]["windows"]
    assert [a["id"] for a in health["open_alerts"]] == [alert_id]
    fleet = app_client.get("/v1/fleet", headers=ADMIN).json()
    assert [(m["id"], m["state"]) for m in fleet["items"]] == [(machine_id, "alarm"),
                                                              (str(quiet_id), "no_data")]
    assert fleet["counts"]["alarm"] == 1 and fleet["items"][0]["firing_anomaly"] == 1
    sign_in(app_client, ADMIN_KEY)
    page = app_client.get("/").text
    row = re.search(rf'<tr data-machine-id="{machine_id}" data-state="(\w+)"', page)
    assert row is not None and row.group(1) == "alarm"
    assert page.index(machine_id) < page.index(str(quiet_id))  # worst first
    assert 'data-testid="health" title="an anomaly alert is firing">Alarm' in \
        app_client.get(f"/machines/{machine_id}").text


def test_read_sessions_see_every_page_and_no_control_that_changes_state(
        app_client: TestClient, conn: psycopg.Connection) -> None:
    machine_id, alert_id = _firing_machine(conn)
    read_key = app_client.post("/v1/api-keys", json={"name": "r", "role": "read"},
                               headers=ADMIN).json()["key"]
    sign_in(app_client, ADMIN_KEY)
    for path in _pages(machine_id, alert_id):
        page = app_client.get(path)
        assert page.status_code == 200, (path, page.text)
        if path != "/":  # the overview only reads
            assert controls_that_change_state(page.text), f"admin sees controls on {path}"
    assert app_client.get("/setup").status_code == 200
    app_client.cookies.clear()
    sign_in(app_client, read_key)
    for path in _pages(machine_id, alert_id):
        page = app_client.get(path)
        assert page.status_code == 200, (path, page.text)
        assert controls_that_change_state(page.text) == [], path
        assert 'href="/setup"' not in page.text
    assert app_client.get("/setup").status_code == 403


def test_pages_have_a_strict_csp_and_only_local_assets(app_client: TestClient,
                                                        conn: psycopg.Connection) -> None:
    machine_id, alert_id = _firing_machine(conn)
    sign_in(app_client, ADMIN_KEY)
    for path in [*_pages(machine_id, alert_id), "/setup", "/sign-in"]:
        page = app_client.get(path)
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert not re.search(r"(src|href)=\"(https?:)?//", page.text), path
        inline = re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", page.text)
        assert all('type="application/json"' in attrs for attrs in inline), path
    for asset in ("/static/vendor/htmx/htmx.min.js", "/static/vendor/uplot/uPlot.iife.min.js",
                  "/static/vendor/uplot/uPlot.min.css", "/static/ui.js", "/static/chart.js",
                  "/static/vendor/swagger-ui/swagger-ui-bundle.js"):
        assert app_client.get(asset).status_code == 200, asset


def test_docs_load_swagger_ui_from_the_app(app_client: TestClient) -> None:
    docs = app_client.get("/docs")
    assert docs.status_code == 200
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "/static/vendor/swagger-ui/swagger-ui.css" in docs.text
    assert "cdn" not in docs.text.lower() and "fastapi.tiangolo.com" not in docs.text


def test_openapi_declares_problem_responses_for_every_route(app_client: TestClient) -> None:
    spec = app_client.get("/openapi.json").json()
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            problems = [code for code, response in operation["responses"].items()
                        if code.startswith(("4", "5"))
                        and "application/problem+json" in response.get("content", {})]
            if not {"401", "422", "503"} <= set(problems):
                missing.append(f"{method.upper()} {path}: {problems}")
    assert not missing, missing
    assert "Problem" in spec["components"]["schemas"]


def test_register_shows_the_token_once_with_a_ready_command(app_client: TestClient,
                                                             conn: psycopg.Connection) -> None:
    csrf = sign_in(app_client, ADMIN_KEY)
    form = {"name": "pump-7", "kind": "pump", "location": "hall B", "labels": "line=3",
            "sensor_name": "mic-1", "embedding_kind": "logmel-v1"}
    made = app_client.post("/setup/machines", data=form, headers={"x-csrftoken": csrf})
    assert made.status_code == 201, made.text
    token = re.search(r'data-testid="ingest-token">(est_[\w-]+)<', made.text)
    assert token is not None
    (sensor_id,) = conn.execute("SELECT id FROM sensors").fetchone()
    assert f"earshot sensor stream --url http://testserver --sensor-id {sensor_id}" in made.text
    assert conn.execute("SELECT labels FROM machines").fetchone() == ({"line": "3"},)
    assert token.group(1) not in app_client.get("/").text  # shown once
    again = app_client.post("/setup/machines", data=form, headers={"x-csrftoken": csrf})
    assert again.status_code == 409 and "already exists" in again.text
    bad = app_client.post("/setup/machines", data={**form, "name": "x", "embedding_kind": "?"},
                          headers={"x-csrftoken": csrf})
    assert bad.status_code == 422 and "embedding" in bad.text
    assert conn.execute("SELECT count(*) FROM machines").fetchone() == (1,)


def test_the_overview_lists_the_worst_first_and_links_to_all(
        app_client: TestClient, conn: psycopg.Connection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(overview, "FIRST_ROWS", 2)
    alarm_id, _ = _firing_machine(conn)
    for _ in range(3):
        make_machine(conn)
    sign_in(app_client, ADMIN_KEY)
    page = app_client.get("/").text
    rows = re.findall(r'<tr data-machine-id="([\w-]+)"', page)
    assert len(rows) == 2 and rows[0] == alarm_id
    assert "Showing the worst 2 of 4 machines." in page and "Untrained: 3" in page
    every = app_client.get("/", params={"show": "all"}).text
    assert len(re.findall(r'<tr data-machine-id=', every)) == 4
    assert "Showing the worst" not in every
