"""Secrets: API keys and ingest tokens are stored only as SHA-256 digests, webhook signing
secrets are shown once, and nothing secret reaches the logs even at DEBUG."""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import psycopg
from fastapi.testclient import TestClient

from service import logs, security
from service.app import create_app
from service.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.faults.procs import ApiProcess

TEXT_OF_EVERY_ROW = """SELECT tablename FROM pg_tables WHERE schemaname = 'public'
                       ORDER BY tablename"""


def every_row_as_text(conn: psycopg.Connection) -> str:
    tables = [row[0] for row in conn.execute(TEXT_OF_EVERY_ROW)]
    parts = []
    for table in tables:
        rows = conn.execute(f'SELECT t::text FROM "{table}" AS t').fetchall()
        parts.extend(row[0] for row in rows)
    conn.commit()
    return "\n".join(parts)


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def test_keys_and_tokens_are_stored_only_as_digests(admin: TestClient,
                                                    conn: psycopg.Connection) -> None:
    key = _ok(admin.post("/v1/api-keys", json={"name": "ci", "role": "read"}), 201)["key"]
    machine = _ok(admin.post("/v1/machines", json={"name": "m", "kind": "pump"}), 201)["id"]
    sensor = _ok(admin.post(f"/v1/machines/{machine}/sensors",
                            json={"name": "s", "embedding": {"kind": "logmel-v1"}}), 201)
    rotated = _ok(admin.post(f"/v1/sensors/{sensor['id']}/token"))["ingest_token"]
    secrets = {key, sensor["ingest_token"], rotated}
    dump = every_row_as_text(conn)
    for secret in secrets:
        assert secret not in dump
        assert secret[4:] not in dump  # not even without its prefix
    digests = {bytes(row[0]) for row in conn.execute(
        "SELECT key_hash FROM api_keys UNION ALL SELECT token_hash FROM sensors")}
    assert hashlib.sha256(key.encode()).digest() in digests
    assert hashlib.sha256(rotated.encode()).digest() in digests
    assert hashlib.sha256(sensor["ingest_token"].encode()).digest() not in digests  # rotated
    # Listings show a recognisable prefix, never a usable key.
    listed = admin.get("/v1/api-keys").json()["items"]
    assert [k["prefix"] for k in listed] == [key[:8] + "…"]
    shown = admin.get(f"/v1/sensors/{sensor['id']}").text
    assert rotated not in shown and "ingest_token" not in shown


def test_secret_comparison_is_digest_based_and_length_independent() -> None:
    assert security.same_secret(ADMIN_KEY, ADMIN_KEY)
    assert not security.same_secret(ADMIN_KEY[:-1], ADMIN_KEY)
    assert not security.same_secret(ADMIN_KEY + "x", ADMIN_KEY)
    assert not security.same_secret("", ADMIN_KEY)
    assert not security.same_secret("\ud800" * 40, ADMIN_KEY)  # lone surrogates do not crash


def test_webhook_secret_is_shown_once(admin: TestClient) -> None:
    created = _ok(admin.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook",
                                                   "events": ["alert.firing"]}), 201)
    secret, hook = created["secret"], created["id"]
    queued = _ok(admin.post(f"/v1/webhooks/{hook}/test"), 202)
    later = [
        admin.get(f"/v1/webhooks/{hook}"), admin.get("/v1/webhooks"),
        admin.patch(f"/v1/webhooks/{hook}", json={"description": "pager"}),
        admin.patch(f"/v1/webhooks/{hook}", json={"url": "http://127.0.0.1:10/hook"}),
        admin.get(f"/v1/webhooks/{hook}/deliveries"),
        admin.post(f"/v1/webhooks/{hook}/deliveries/{queued['delivery_id']}/redeliver"),
    ]
    for response in later:
        assert response.status_code in (200, 202), response.text
        assert secret not in response.text and "whsec_" not in response.text
        assert "secret" not in json.dumps(response.json())


def test_nothing_secret_is_logged_at_debug(settings: Settings, tmp_path: Path) -> None:
    """The API process as deployed, at its most verbose (EARSHOT_LOG_LEVEL=DEBUG)."""
    log = tmp_path / "api.log"
    api = ApiProcess(settings, log, uvicorn_log_level="debug", EARSHOT_LOG_LEVEL="DEBUG",
                     EARSHOT_WEBHOOK_ALLOW_PRIVATE="true")
    api.start()
    try:
        with httpx.Client(base_url=api.url, timeout=10) as client:
            secrets = exercise(client)
            metrics = client.get("/metrics").text
    finally:
        api.stop()
    secrets.add(database_password(settings))
    text = log.read_text(errors="replace")
    assert '"logger": "earshot.api"' in text, "nothing was logged: the test would prove nothing"
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:6]}…) is in the log"
        assert secret not in metrics


def test_nothing_secret_in_any_logger_even_library_debug(settings: Settings) -> None:
    """In process, with every logger (psycopg's and the pool's included) at DEBUG."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root, saved = logging.getLogger(), logging.getLogger().level
    noisy = [logging.getLogger(name) for name in ("psycopg", "psycopg.pool", "httpx")]
    levels = [logger.level for logger in noisy]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for logger in noisy:
        logger.setLevel(logging.DEBUG)
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            secrets = exercise(client)
    finally:
        root.removeHandler(handler)
        root.setLevel(saved)
        for logger, level in zip(noisy, levels, strict=True):
            logger.setLevel(level)
    secrets.add(database_password(settings))
    text = stream.getvalue()
    assert '"logger": "psycopg.pool"' in text and '"logger": "earshot.api"' in text
    for secret in secrets:
        assert secret not in text, f"a secret ({secret[:6]}…) is in the log"


def database_password(settings: Settings) -> str:
    credentials = settings.resolved_database_url().split("//", 1)[1].split("@")[0]
    return credentials.split(":", 1)[1]


def exercise(client: httpx.Client) -> set[str]:
    """Calls with every kind of credential, failed and erroring ones included; returns
    every secret that crossed the wire."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    key = _ok(client.post("/v1/api-keys", headers=admin,
                          json={"name": "k", "role": "read"}), 201)["key"]
    machine = _ok(client.post("/v1/machines", headers=admin,
                              json={"name": "m", "kind": "pump"}), 201)["id"]
    sensor = _ok(client.post(f"/v1/machines/{machine}/sensors", headers=admin,
                             json={"name": "s", "embedding": {"kind": "x", "dim": 2}}), 201)
    token = sensor["ingest_token"]
    hook = _ok(client.post("/v1/webhooks", headers=admin, json={
        "url": "http://127.0.0.1:9/hook", "events": ["alert.firing"]}), 201)
    _ok(client.get("/v1/machines", headers={"Authorization": f"Bearer {key}"}))
    posted = client.post(f"/v1/sensors/{sensor['id']}/embeddings",
                         headers={"Authorization": f"Bearer {token}"},
                         json={"windows": [{"t": "2026-01-01T00:00:00", "v": [1, 2]}]})
    assert posted.status_code == 422
    wrong = "esk_" + "w" * 43  # a mistyped key is still someone's secret
    assert client.get("/v1/machines", headers={"Authorization": f"Bearer {wrong}"}
                      ).status_code == 401
    assert client.get("/v1/machines", headers={"Authorization": f"Bearer {token}"}
                      ).status_code == 403
    # A request that fails inside the database layer (logged as a warning).
    assert client.post("/v1/machines", headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                       json={"name": "nul\u0000", "kind": "pump"}).status_code == 422
    return {ADMIN_KEY, key, token, hook["secret"], wrong}
