"""`/v1/webhooks`: the secret shown once, validation and target refusal as problem+json
with nothing stored, PATCH/DELETE, and test sends, deliveries and redelivery through the
real delivery worker to a real receiver."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.db import make_pool
from service.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.service.alerting.conftest import WorkerThread, make_machine, wait_for
from tests.service.alerting.receiver import Receiver, Reply


@pytest.fixture
def strict(settings: Settings) -> Iterator[TestClient]:
    """The API as deployed: private and loopback targets refused."""
    app = create_app(settings.model_copy(update={"webhook_allow_private": False}))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        yield client


def test_create_shows_the_secret_once(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    created = admin.post("/v1/webhooks", json={
        "url": "http://127.0.0.1:9/hook", "events": ["alert.firing", "alert.firing",
                                                     "model.trained"],
        "machine_ids": [str(machine_id)], "description": "pager"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert body["events"] == ["alert.firing", "model.trained"] and body["enabled"] is True
    shown = admin.get(f"/v1/webhooks/{body['id']}").json()
    assert "secret" not in shown and shown["machine_ids"] == [str(machine_id)]
    listed = admin.get("/v1/webhooks").json()["items"]
    assert [w["id"] for w in listed] == [body["id"]] and "secret" not in listed[0]


INVALID = [
    ({"url": "http://127.0.0.1:9/", "events": ["alert.exploded"]}, ["alert.exploded", "known"]),
    ({"url": "http://127.0.0.1:9/", "events": []}, ["events"]),
    ({"url": "ftp://127.0.0.1/", "events": ["alert.firing"]}, ["scheme"]),
    ({"url": "http://127.0.0.1:9/", "events": ["alert.firing"], "secret": "x"}, ["secret"]),
    ({"url": "http://127.0.0.1:9/", "events": ["alert.firing"],
      "machine_ids": [str(uuid.UUID(int=7))]}, ["unknown machine"]),
]
PRIVATE = [
    ("http://127.0.0.1:8080/hook", "loopback"), ("http://localhost/hook", "loopback"),
    ("http://10.0.0.5/hook", "private"), ("http://169.254.169.254/latest", "link-local"),
    ("http://[::ffff:127.0.0.1]/hook", "loopback"), ("http://[::1]:9000/", "loopback"),
    ("http://0.0.0.0/", "unspecified"), ("http://224.0.0.1/", "multicast"),
]


def test_invalid_webhooks_are_refused_and_nothing_is_stored(admin: TestClient) -> None:
    # One database for all cases: a clone per case would cost more than the cases.
    for body, words in INVALID:
        response = admin.post("/v1/webhooks", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        for word in words:
            assert word in response.text, (body, response.text)
    assert admin.get("/v1/webhooks").json()["items"] == []


def test_private_targets_are_refused(strict: TestClient) -> None:
    for url, reason in PRIVATE:
        response = strict.post("/v1/webhooks", json={"url": url, "events": ["alert.firing"]})
        assert response.status_code == 422, (url, response.text)
        assert reason in response.json()["detail"], (url, response.text)
    assert strict.get("/v1/webhooks").json()["items"] == []


def test_patch_and_delete(admin: TestClient, strict: TestClient) -> None:
    hook = admin.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/a",
                                            "events": ["alert.firing"]}).json()
    url = f"/v1/webhooks/{hook['id']}"
    patched = admin.patch(url, json={"events": ["alert.resolved"], "enabled": False})
    assert patched.status_code == 200, patched.text
    assert patched.json()["events"] == ["alert.resolved"] and patched.json()["enabled"] is False
    assert patched.json()["url"] == hook["url"]
    assert admin.patch(url, json={"enabled": True}).json()["disabled_reason"] is None
    assert admin.patch(url, json={"events": None}).status_code == 422
    refused = strict.patch(url, json={"url": "http://10.1.1.1/"})
    assert refused.status_code == 422 and "private" in refused.json()["detail"]
    assert admin.get(url).json()["url"] == hook["url"]
    assert admin.delete(url).status_code == 204
    assert admin.get(url).status_code == 404
    assert admin.delete(url).status_code == 404


def test_test_send_deliveries_and_redelivery(admin: TestClient, settings: Settings) -> None:
    receiver = Receiver(plan=lambda n, _id: Reply(500) if n == 0 else Reply(200)).start()
    fast = settings.model_copy(update={"webhook_retry_base_s": 0.1, "webhook_retry_max_s": 0.3})
    pool = make_pool(fast, max_size=6)
    pool.open(wait=True)
    worker = WorkerThread(fast, pool).start()
    try:
        hook = admin.post("/v1/webhooks", json={"url": receiver.url,
                                                "events": ["alert.firing"]}).json()
        receiver.secret = hook["secret"]
        queued = admin.post(f"/v1/webhooks/{hook['id']}/test")
        assert queued.status_code == 202, queued.text
        deliveries_url = f"/v1/webhooks/{hook['id']}/deliveries"
        wait_for(lambda: admin.get(deliveries_url).json()["items"][0]["state"] == "delivered",
                 10, "test delivery")
        (delivery,) = admin.get(deliveries_url).json()["items"]
        assert delivery["message_id"] == queued.json()["message_id"]
        assert delivery["event_type"] == "webhook.test" and delivery["attempts"] == 2
        assert [a["status"] for a in delivery["recent_attempts"]] == [200, 500]
        assert delivery["next_attempt_at"] is None and delivery["last_status"] == 200
        again = admin.post(f"{deliveries_url}/{delivery['id']}/redeliver")
        assert again.status_code == 202 and again.json()["state"] == "pending"
        wait_for(lambda: len(receiver.acked()) == 2, 10, "redelivery")
        assert {r.webhook_id for r in receiver.snapshot()} == {delivery["message_id"]}
        assert all(r.verified for r in receiver.snapshot())
        assert receiver.snapshot()[0].payload["type"] == "webhook.test"
        assert admin.get(deliveries_url, params={"state": "failed"}).json()["items"] == []
        assert admin.post(f"{deliveries_url}/{uuid.uuid4()}/redeliver").status_code == 404
    finally:
        worker.stop()
        pool.close()
        receiver.stop()
