"""Every route of the app x every kind of caller -> 401, 403 or an answer that is not
about authentication.

The routes are read from `create_app(...).routes`, so a route added later is checked
automatically, and one missing from RIGHTS fails the test until someone decides who may
call it."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import ADMIN_KEY

PUBLIC, READ, ADMIN, SENSOR_WRITE = "public", "read", "admin", "sensor-write"
ANY_TOKEN = "any-token"
# Dashboard pages: the caller signs in with its token (POST /sign-in) and calls the page
# with the session cookie (and the CSRF header when it changes state).
UI_PUBLIC, UI_READ, UI_ADMIN = "ui-public", "ui-read", "ui-admin"
RIGHTS: dict[tuple[str, str], str] = {
    ("GET", "/openapi.json"): PUBLIC, ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/sign-in"): UI_PUBLIC, ("POST", "/sign-in"): UI_PUBLIC,
    ("POST", "/sign-out"): UI_READ, ("GET", "/"): UI_READ,
    ("GET", "/machines/{machine_id}"): UI_READ, ("GET", "/machines/{machine_id}/models"): UI_READ,
    ("GET", "/alerts"): UI_READ, ("GET", "/alerts/{alert_id}"): UI_READ,
    ("GET", "/setup"): UI_ADMIN, ("POST", "/setup/machines"): UI_ADMIN,
    ("GET", "/v1/fleet"): READ,
    ("POST", "/v1/fleet/embedding/train"): ADMIN, ("GET", "/v1/fleet/embedding"): READ,
    ("GET", "/v1/fleet/embedding/runs/{run_id}"): READ,
    ("GET", "/v1/fleet/embedding/{version}"): READ,
    # A sensor downloads the model it embeds with: any valid token.
    ("GET", "/v1/fleet/embedding/{version}.onnx"): ANY_TOKEN,
    ("GET", "/healthz"): PUBLIC, ("GET", "/readyz"): PUBLIC, ("GET", "/metrics"): PUBLIC,
    ("POST", "/v1/api-keys"): ADMIN, ("GET", "/v1/api-keys"): ADMIN,
    ("DELETE", "/v1/api-keys/{key_id}"): ADMIN,
    ("POST", "/v1/machines"): ADMIN, ("GET", "/v1/machines"): READ,
    ("GET", "/v1/machines/{machine_id}"): READ, ("PATCH", "/v1/machines/{machine_id}"): ADMIN,
    ("DELETE", "/v1/machines/{machine_id}"): ADMIN,
    ("POST", "/v1/machines/{machine_id}/sensors"): ADMIN,
    ("GET", "/v1/machines/{machine_id}/sensors"): READ,
    ("GET", "/v1/sensors/{sensor_id}"): READ, ("PATCH", "/v1/sensors/{sensor_id}"): ADMIN,
    ("DELETE", "/v1/sensors/{sensor_id}"): ADMIN,
    ("POST", "/v1/sensors/{sensor_id}/token"): ADMIN,
    ("POST", "/v1/sensors/{sensor_id}/embeddings"): SENSOR_WRITE,
    ("POST", "/v1/sensors/{sensor_id}/audio"): SENSOR_WRITE,
    ("GET", "/v1/sensors/{sensor_id}/audio"): READ,
    ("GET", "/v1/machines/{machine_id}/spectrogram"): READ,
    ("POST", "/v1/sensors/{sensor_id}/reembed"): ADMIN,
    ("GET", "/v1/sensors/{sensor_id}/reembed/{job_id}"): READ,
    ("GET", "/v1/sensors/{sensor_id}/ingest-errors"): READ,
    ("GET", "/v1/machines/{machine_id}/scores"): READ,
    ("GET", "/v1/machines/{machine_id}/timeline"): READ,
    ("GET", "/v1/machines/{machine_id}/health"): READ,
    ("GET", "/v1/machines/{machine_id}/alert-rule"): READ,
    ("PUT", "/v1/machines/{machine_id}/alert-rule"): ADMIN,
    ("GET", "/v1/alerts"): READ, ("GET", "/v1/alerts/{alert_id}"): READ,
    ("POST", "/v1/alerts/{alert_id}/ack"): ADMIN,
    ("POST", "/v1/alerts/{alert_id}/feedback"): ADMIN,
    ("POST", "/v1/machines/{machine_id}/silences"): ADMIN,
    ("GET", "/v1/machines/{machine_id}/silences"): READ,
    ("DELETE", "/v1/machines/{machine_id}/silences/{silence_id}"): ADMIN,
    # Webhooks carry signing secrets and target URLs: admin only, reads included.
    ("POST", "/v1/webhooks"): ADMIN, ("GET", "/v1/webhooks"): ADMIN,
    ("GET", "/v1/webhooks/{webhook_id}"): ADMIN, ("PATCH", "/v1/webhooks/{webhook_id}"): ADMIN,
    ("DELETE", "/v1/webhooks/{webhook_id}"): ADMIN,
    ("POST", "/v1/webhooks/{webhook_id}/test"): ADMIN,
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): ADMIN,
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): ADMIN,
    ("GET", "/v1/detectors"): READ,
    ("PUT", "/v1/machines/{machine_id}/detector"): ADMIN,
    ("GET", "/v1/machines/{machine_id}/detector"): READ,
    ("POST", "/v1/machines/{machine_id}/baselines"): ADMIN,
    ("GET", "/v1/machines/{machine_id}/baselines"): READ,
    ("DELETE", "/v1/machines/{machine_id}/baselines/{baseline_id}"): ADMIN,
    ("POST", "/v1/machines/{machine_id}/conditions"): ADMIN,
    ("GET", "/v1/machines/{machine_id}/conditions"): READ,
    ("DELETE", "/v1/machines/{machine_id}/conditions/{condition_id}"): ADMIN,
    ("POST", "/v1/machines/{machine_id}/train"): ADMIN,
    ("GET", "/v1/jobs/{job_id}"): READ, ("GET", "/v1/machines/{machine_id}/jobs"): READ,
    ("GET", "/v1/machines/{machine_id}/models"): READ,
    ("GET", "/v1/machines/{machine_id}/models/{version}"): READ,
    ("POST", "/v1/machines/{machine_id}/models/{version}/activate"): ADMIN,
    ("POST", "/v1/machines/{machine_id}/labels"): ADMIN,
    ("GET", "/v1/machines/{machine_id}/labels"): READ,
    ("DELETE", "/v1/machines/{machine_id}/labels/{label_id}"): ADMIN,
    ("POST", "/v1/machines/{machine_id}/labels.txt"): ADMIN,
    ("GET", "/v1/machines/{machine_id}/labels.txt"): READ,
    ("GET", "/v1/classifiers"): READ,
    ("PUT", "/v1/machines/{machine_id}/classifier"): ADMIN,
    ("GET", "/v1/machines/{machine_id}/classifier"): READ,
    ("GET", "/v1/machines/{machine_id}/predictions"): READ,
    ("GET", "/v1/machines/{machine_id}/classes"): READ,
    ("GET", "/v1/machines/{machine_id}/events"): READ,
    ("PUT", "/v1/machines/{machine_id}/event-rules"): ADMIN,
    ("GET", "/v1/machines/{machine_id}/event-rules"): READ,
}
CALLERS = ["none", "garbage", "revoked", "other_sensor", "own_sensor", "read", "admin_key",
           "admin"]
ALLOWED = {PUBLIC: set(CALLERS), READ: {"read", "admin_key", "admin"},
           ADMIN: {"admin_key", "admin"}, SENSOR_WRITE: {"own_sensor", "admin_key", "admin"},
           ANY_TOKEN: {"own_sensor", "other_sensor", "read", "admin_key", "admin"},
           UI_PUBLIC: set(CALLERS), UI_READ: {"read", "admin_key", "admin"},
           UI_ADMIN: {"admin_key", "admin"}}
UNAUTHENTICATED = {"none", "garbage", "revoked"}


def app_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path template) of every route, including those of included routers."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        found = [(c.methods, c.path) for c in contexts()] if contexts else \
            [(getattr(route, "methods", None) or set(), getattr(route, "path", ""))]
        for methods, path in found:
            for method in sorted(set(methods) - {"HEAD"}):
                yield method, path


@dataclass
class World:
    client: TestClient
    ids: dict[str, str]  # path parameter -> a real id
    victims: dict[str, str]  # ids that DELETE and token rotation may destroy
    tokens: dict[str, str | None]
    sessions: dict[str, dict[str, str]]  # caller -> request headers of its dashboard session


def _created(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code in (201, 202), response.text
    result: dict[str, Any] = response.json()
    return result


def _machine(client: TestClient, name: str) -> tuple[str, dict[str, Any]]:
    machine = _created(client, "/v1/machines", {"name": name, "kind": "pump"})["id"]
    sensor = _created(client, f"/v1/machines/{machine}/sensors",
                      {"name": "mic", "embedding": {"kind": "logmel-v1"}})
    return machine, sensor


def _objects(client: TestClient, machine: str) -> dict[str, str]:
    baseline = _created(client, f"/v1/machines/{machine}/baselines",
                        {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"})
    condition = _created(client, f"/v1/machines/{machine}/conditions",
                         {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z",
                          "attributes": {"rpm": 1800}})
    silence = _created(client, f"/v1/machines/{machine}/silences",
                       {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z",
                        "reason": "maintenance"})
    webhook = _created(client, "/v1/webhooks", {"url": "http://127.0.0.1:9/hook",
                                                "events": ["alert.firing"]})
    queued = _created(client, f"/v1/webhooks/{webhook['id']}/test", {})
    return {"baseline_id": baseline["id"], "silence_id": silence["id"],
            "condition_id": condition["id"],
            "webhook_id": webhook["id"], "delivery_id": queued["delivery_id"]}


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        machine, sensor = _machine(client, "press")
        victim_machine, victim_sensor = _machine(client, "victim")
        _, other = _machine(client, "fan")
        revoked = _created(client, "/v1/api-keys", {"name": "old", "role": "admin"})
        assert client.delete(f"/v1/api-keys/{revoked['id']}",
                             headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200
        read = _created(client, "/v1/api-keys", {"name": "reader", "role": "read"})
        admin = _created(client, "/v1/api-keys", {"name": "ops", "role": "admin"})
        victim_key = _created(client, "/v1/api-keys", {"name": "victim", "role": "read"})
        ids = {"machine_id": machine, "sensor_id": sensor["id"], "key_id": victim_key["id"],
               "alert_id": str(uuid.uuid4()), "job_id": str(uuid.uuid4()), "version": "1",
               "run_id": str(uuid.uuid4()),
               "label_id": str(uuid.uuid4()),  # a label needs stored windows: 404 is fine
               **_objects(client, machine)}
        victims = {**ids, **_objects(client, victim_machine), "machine_id": victim_machine,
                   "sensor_id": victim_sensor["id"]}
        tokens = {"none": None, "garbage": "esk_" + "g" * 43, "revoked": revoked["key"],
                  "other_sensor": other["ingest_token"], "own_sensor": sensor["ingest_token"],
                  "read": read["key"], "admin_key": admin["key"], "admin": ADMIN_KEY}
        yield World(client, ids, victims, tokens, _sessions(client, tokens))


def _sessions(client: TestClient, tokens: dict[str, str | None]) -> dict[str, dict[str, str]]:
    """Sign every caller in through the form; callers whose token cannot sign in (none,
    garbage, revoked, sensor tokens) get no session cookie. The client's own cookie jar is
    emptied each time, so API calls of the matrix never carry a session."""
    result = {}
    for caller, token in tokens.items():
        client.cookies.clear()
        client.get("/sign-in")
        csrf = client.cookies.get("csrftoken")
        assert csrf
        client.post("/sign-in", data={"key": token or "", "csrf_token": csrf},
                    follow_redirects=False)
        session = client.cookies.get("earshot_session")
        cookie = f"csrftoken={csrf}" + (f"; earshot_session={session}" if session else "")
        result[caller] = {"Cookie": cookie, "x-csrftoken": csrf}
    client.cookies.clear()
    return result


def concrete(world: World, method: str, path: str) -> str:
    destroys = method == "DELETE" or path.endswith("/token")
    ids = world.victims if destroys else world.ids
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], path)


def test_every_route_is_classified(settings: Settings) -> None:
    routes = set(app_routes(create_app(settings)))
    unknown = sorted(routes - set(RIGHTS))
    assert not unknown, f"classify these routes in RIGHTS: {unknown}"
    assert not set(RIGHTS) - routes, f"stale entries: {sorted(set(RIGHTS) - routes)}"


def test_access_matrix(world: World, settings: Settings) -> None:
    checked = 0
    failures = []
    for method, path in sorted(app_routes(create_app(settings))):
        right = RIGHTS[(method, path)]
        url = concrete(world, method, path)
        for caller in CALLERS:
            token = world.tokens[caller]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            body = {} if method in ("POST", "PUT", "PATCH") else None
            if right.startswith("ui-"):
                headers = world.sessions[caller]
            status = world.client.request(method, url, json=body, headers=headers,
                                          follow_redirects=False).status_code
            checked += 1
            if caller in ALLOWED[right]:
                ok = status not in (401, 403) and status < 500
            elif right.startswith("ui-"):
                ok = status == _ui_refusal(method, caller)
            else:
                ok = status == (401 if caller in UNAUTHENTICATED else 403)
            if not ok:
                failures.append(f"{method} {path} as {caller} ({right}): {status}")
    print(f"access matrix: {checked} requests")
    assert not failures, "\n".join(failures)


def _ui_refusal(method: str, caller: str) -> int:
    """A signed-in read session is forbidden admin pages; without a session a page
    redirects to the sign-in page and anything else answers 401."""
    if caller == "read":
        return 403
    return 303 if method == "GET" else 401


def test_reads_by_authorized_callers_succeed(world: World, settings: Settings) -> None:
    """The matrix accepts any non-auth answer; real ids make the reads actual 2xx."""
    headers = {"Authorization": f"Bearer {world.tokens['read']}"}
    for method, path in sorted(app_routes(create_app(settings))):
        if method == "GET" and RIGHTS[(method, path)] == READ and "{alert_id}" not in path \
                and "{job_id}" not in path and "{version}" not in path and "{run_id}" not in path \
                and not path.endswith(("/detector", "/classifier", "/audio", "/spectrogram")):
            response = world.client.get(concrete(world, method, path), headers=headers)
            assert response.status_code == 200, f"{path}: {response.text}"
        if method == "GET" and RIGHTS[(method, path)] == UI_READ and "{alert_id}" not in path:
            response = world.client.get(concrete(world, method, path),
                                        headers=world.sessions["read"])
            assert response.status_code == 200, f"{path}: {response.text}"


def test_audio_reads_need_a_read_or_admin_key(world: World) -> None:
    """Held audio and its spectrogram: any API key reads them; a sensor token (its own or
    another sensor's) does not, and the routes' ranges are real so readers get a 200."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros((32000, 1), np.float32), 16000, format="WAV")
    sensor, machine = world.ids["sensor_id"], world.ids["machine_id"]
    stored = world.client.post(f"/v1/sensors/{sensor}/audio", content=buffer.getvalue(),
                               params={"start": start.isoformat()},
                               headers={"Authorization": f"Bearer {world.tokens['own_sensor']}",
                                        "Content-Type": "audio/wav"})
    assert stored.status_code == 200, stored.text
    span = {"start": start.isoformat(), "end": (start + timedelta(seconds=2)).isoformat()}
    for path in (f"/v1/sensors/{sensor}/audio", f"/v1/machines/{machine}/spectrogram"):
        for caller, status in (("read", 200), ("admin_key", 200), ("own_sensor", 403),
                               ("other_sensor", 403), ("none", 401)):
            token = world.tokens[caller]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            answer = world.client.get(path, params=span, headers=headers)
            assert answer.status_code == status, (path, caller, answer.text)
