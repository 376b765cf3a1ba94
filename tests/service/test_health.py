from __future__ import annotations

from fastapi.testclient import TestClient


def test_healthz_is_always_ok(app_client: TestClient) -> None:
    response = app_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_apache_timescaledb_and_no_pending_migrations(
        app_client: TestClient) -> None:
    response = app_client.get("/readyz")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["timescaledb"]["license"] == "apache"
    assert body["timescaledb"]["version"].startswith("2.19")
    assert body["migrations"]["pending"] == []


def test_metrics_exposes_prometheus_text(app_client: TestClient) -> None:
    app_client.get("/healthz")
    response = app_client.get("/metrics")
    assert response.status_code == 200
    assert "earshot_http_requests_total" in response.text


def test_framework_errors_are_problem_json(app_client: TestClient) -> None:
    missing = app_client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404
    wrong_method = app_client.put("/healthz")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["title"] == "Method not allowed"
