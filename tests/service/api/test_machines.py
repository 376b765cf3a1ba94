from __future__ import annotations

import time
from uuid import UUID

import numpy as np
import psycopg
from fastapi.testclient import TestClient

from ingest import codec
from service import security
from service.db import make_pool
from service.queries import api_keys, machines

PROBLEM = "application/problem+json"


def make_machine(admin: TestClient, name: str = "press-1", **fields: object) -> dict:
    response = admin.post("/v1/machines", json={"name": name, "kind": "press", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def make_sensor(admin: TestClient, machine_id: str, name: str = "mic") -> dict:
    response = admin.post(f"/v1/machines/{machine_id}/sensors",
                          json={"name": name, "embedding": {"kind": "vendor-x", "dim": 4}})
    assert response.status_code == 201, response.text
    return response.json()


def post_windows(client: TestClient, sensor_id: str, n: int, token: str | None = None) -> None:
    t0 = (time.time_ns() // 1000) - 60_000_000
    times = t0 + np.arange(n, dtype=np.int64) * 1_000_000
    values = np.arange(n * 4, dtype=np.float32).reshape(n, 4)
    headers = {"content-type": codec.BINARY_TYPE}
    if token:
        headers["authorization"] = f"Bearer {token}"
    response = client.post(f"/v1/sensors/{sensor_id}/embeddings",
                           content=codec.encode_binary(times, values), headers=headers)
    assert response.status_code == 200, response.text


def key(admin: TestClient, role: str) -> str:
    return admin.post("/v1/api-keys", json={"name": role, "role": role}).json()["key"]


def test_create_get_patch_machine(admin: TestClient) -> None:
    created = make_machine(admin, location="hall 2", labels={"site": "berlin", "line": "3"})
    UUID(created["id"])
    assert created["labels"] == {"site": "berlin", "line": "3"}
    assert created["created_at"]
    assert admin.get(f"/v1/machines/{created['id']}").json() == created
    patched = admin.patch(f"/v1/machines/{created['id']}",
                          json={"location": None, "labels": {"site": "paris"}})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["name"], body["kind"], body["location"], body["labels"]) == \
        ("press-1", "press", None, {"site": "paris"})
    assert body["updated_at"] > created["updated_at"]


def test_duplicate_names_conflict(admin: TestClient) -> None:
    make_machine(admin, "a")
    other = make_machine(admin, "b")
    duplicate = admin.post("/v1/machines", json={"name": "a", "kind": "pump"})
    assert duplicate.status_code == 409
    assert duplicate.headers["content-type"] == PROBLEM
    assert "'a' already exists" in duplicate.json()["detail"]
    renamed = admin.patch(f"/v1/machines/{other['id']}", json={"name": "a"})
    assert renamed.status_code == 409
    assert admin.get(f"/v1/machines/{other['id']}").json()["name"] == "b"


def test_invalid_bodies_are_422_problems(admin: TestClient) -> None:
    machine = make_machine(admin)
    cases = [
        ("post", "/v1/machines", {"name": "", "kind": "press"}),
        ("post", "/v1/machines", {"name": "x"}),
        ("post", "/v1/machines", {"name": "x", "kind": "k", "labels": {"a:b": "c"}}),
        ("post", "/v1/machines", {"name": "x", "kind": "k", "colour": "red"}),
        ("patch", f"/v1/machines/{machine['id']}", {"name": None}),
        ("patch", f"/v1/machines/{machine['id']}", {"labels": None}),
    ]
    for method, url, body in cases:
        response = admin.request(method, url, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.headers["content-type"] == PROBLEM
    assert [m["name"] for m in admin.get("/v1/machines").json()["items"]] == ["press-1"]


def test_list_paginates_and_filters(admin: TestClient) -> None:
    for i in range(5):
        make_machine(admin, f"m{i}", kind="pump" if i % 2 else "fan",
                     labels={"site": "north" if i < 3 else "south", **({"vip": "1"} if i == 4
                                                                      else {})})
    first = admin.get("/v1/machines", params={"limit": 2}).json()
    assert [m["name"] for m in first["items"]] == ["m0", "m1"]
    assert first["next_offset"] == 2
    last = admin.get("/v1/machines", params={"limit": 2, "offset": 4}).json()
    assert [m["name"] for m in last["items"]] == ["m4"] and last["next_offset"] is None

    def names(**params: object) -> list[str]:
        response = admin.get("/v1/machines", params=params)
        assert response.status_code == 200, response.text
        return [m["name"] for m in response.json()["items"]]

    assert names(kind="pump") == ["m1", "m3"]
    assert names(label="site:north") == ["m0", "m1", "m2"]
    assert names(label=["site:south", "vip:1"]) == ["m4"]
    assert names(label="vip") == ["m4"]
    assert names(kind="fan", label="site:south") == ["m4"]
    assert names(label="site:nowhere") == []
    bad = admin.get("/v1/machines", params={"label": ":x"})
    assert bad.status_code == 400 and bad.headers["content-type"] == PROBLEM


def test_unknown_machine_is_404(admin: TestClient) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    for method in ("get", "patch", "delete"):
        response = admin.request(method, f"/v1/machines/{missing}",
                                 json={} if method == "patch" else None)
        assert response.status_code == 404, (method, response.text)
        assert response.headers["content-type"] == PROBLEM


def test_key_rules(admin: TestClient) -> None:
    machine = make_machine(admin)
    sensor = make_sensor(admin, machine["id"])
    reader, writer = key(admin, "read"), key(admin, "admin")
    revoked = admin.post("/v1/api-keys", json={"name": "old", "role": "admin"}).json()
    admin.delete(f"/v1/api-keys/{revoked['id']}")
    rotated = sensor["ingest_token"]
    admin.post(f"/v1/sensors/{sensor['id']}/token")

    def status(method: str, url: str, token: str | None, **kwargs: object) -> int:
        headers = {"authorization": f"Bearer {token}" if token else ""}
        return admin.request(method, url, headers=headers, **kwargs).status_code

    body = {"name": "new", "kind": "k"}
    for token in (None, "garbage", revoked["key"], rotated, "est_" + "x" * 43):
        assert status("get", "/v1/machines", token) == 401, token
        assert status("post", "/v1/machines", token, json=body) == 401, token
    assert status("get", "/v1/machines", reader) == 200
    assert status("post", "/v1/machines", reader, json=body) == 403
    assert status("delete", f"/v1/machines/{machine['id']}", reader) == 403
    assert status("post", "/v1/machines", writer, json=body) == 201
    assert status("get", f"/v1/machines/{machine['id']}", writer) == 200


def test_sensor_token_cannot_touch_the_registry(admin: TestClient) -> None:
    machine = make_machine(admin)
    token = make_sensor(admin, machine["id"])["ingest_token"]
    headers = {"authorization": f"Bearer {token}"}
    assert admin.get("/v1/machines", headers=headers).status_code == 403
    assert admin.get(f"/v1/machines/{machine['id']}", headers=headers).status_code == 403
    assert admin.patch(f"/v1/machines/{machine['id']}", json={"kind": "x"},
                       headers=headers).status_code == 403
    assert admin.post("/v1/machines", json={"name": "z", "kind": "k"},
                      headers=headers).status_code == 403


def test_delete_without_data_needs_no_confirmation(admin: TestClient,
                                                   conn: psycopg.Connection) -> None:
    machine = make_machine(admin)
    make_sensor(admin, machine["id"])
    assert admin.delete(f"/v1/machines/{machine['id']}").status_code == 204
    assert admin.get(f"/v1/machines/{machine['id']}").status_code == 404
    assert conn.execute("SELECT count(*) FROM sensors").fetchone() == (0,)


def _hypertable_rows(conn: psycopg.Connection, sensor_id: str) -> dict[str, int]:
    counts = {}
    for table in ("embeddings", "scores", "predictions", "ingest_batches", "ingest_errors"):
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE sensor_id = %s", (sensor_id,)
                           ).fetchone()
        counts[table] = row[0] if row else -1
    return counts


def _add_scores(conn: psycopg.Connection, machine_id: str, sensor_id: str) -> None:
    with conn.transaction():
        conn.execute("INSERT INTO scores SELECT %s, %s, t, 1, 0.5, 1.0, false FROM embeddings "
                     "WHERE sensor_id = %s", (machine_id, sensor_id, sensor_id))
        conn.execute("INSERT INTO predictions SELECT %s, %s, t, 1, 'ok', 0.9, '{}' "
                     "FROM embeddings WHERE sensor_id = %s", (machine_id, sensor_id, sensor_id))
        conn.execute("INSERT INTO ingest_errors (sensor_id, source, reason) "
                     "VALUES (%s, 'mqtt', 'bad')", (sensor_id,))
        conn.execute("INSERT INTO baselines (machine_id, start_at, end_at) "
                     "VALUES (%s, now() - interval '1 h', now())", (machine_id,))


def test_delete_with_data_needs_confirmation(admin: TestClient,
                                             conn: psycopg.Connection) -> None:
    machine = make_machine(admin)
    sensor = make_sensor(admin, machine["id"])
    keep = make_sensor(admin, make_machine(admin, "other")["id"])
    post_windows(admin, sensor["id"], 7)
    post_windows(admin, keep["id"], 3)
    _add_scores(conn, machine["id"], sensor["id"])
    refused = admin.delete(f"/v1/machines/{machine['id']}")
    assert refused.status_code == 409
    problem = refused.json()
    assert "7 windows" in problem["detail"] and "confirm=delete-data" in problem["detail"]
    assert problem["data"] == {"windows": 7, "scores": 7, "predictions": 7, "models": 0,
                               "baselines": 1, "labels": 0, "audio_chunks": 0}
    assert _hypertable_rows(conn, sensor["id"]) == {
        "embeddings": 7, "scores": 7, "predictions": 7, "ingest_batches": 1, "ingest_errors": 1}
    wrong = admin.delete(f"/v1/machines/{machine['id']}", params={"confirm": "yes"})
    assert wrong.status_code == 422
    done = admin.delete(f"/v1/machines/{machine['id']}", params={"confirm": "delete-data"})
    assert done.status_code == 204, done.text
    assert set(_hypertable_rows(conn, sensor["id"]).values()) == {0}
    assert conn.execute("SELECT count(*) FROM baselines").fetchone() == (0,)
    assert _hypertable_rows(conn, keep["id"])["embeddings"] == 3


def test_write_is_committed_at_block_end_after_a_token_lookup(settings, conn: psycopg.Connection
                                                              ) -> None:
    """The API pool is autocommit: after an API-key lookup no read transaction is left
    open, so the route's transaction block is a real commit, visible to others at once
    (not when the connection is released after the response)."""
    with conn.transaction():
        api_keys.insert(conn, "k", "admin", security.digest("esk_x"), "esk_x…")
    with make_pool(settings, max_size=1, autocommit=True) as pool, \
            pool.connection() as request_conn:
        assert api_keys.active_role(request_conn, security.digest("esk_x")) is not None
        with request_conn.transaction():
            machines.insert(request_conn, "seen", "press", None, {})
        row = conn.execute("SELECT count(*) FROM machines WHERE name = 'seen'").fetchone()
        assert row == (1,)
