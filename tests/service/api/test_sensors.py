from __future__ import annotations

import time

import httpx
import numpy as np
import psycopg
from fastapi.testclient import TestClient

from ingest import codec

PROBLEM = "application/problem+json"
MISSING = "00000000-0000-0000-0000-000000000000"


def make_machine(admin: TestClient, name: str = "press-1") -> str:
    response = admin.post("/v1/machines", json={"name": name, "kind": "press"})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def create(admin: TestClient, machine_id: str, **body: object) -> httpx.Response:
    return admin.post(f"/v1/machines/{machine_id}/sensors", json=body)


def make_sensor(admin: TestClient, machine_id: str, name: str = "mic", dim: int = 4) -> dict:
    response = create(admin, machine_id, name=name, embedding={"kind": "vendor-x", "dim": dim})
    assert response.status_code == 201, response.text
    return response.json()


def send(client: TestClient, sensor_id: str, token: str | None, n: int = 2) -> int:
    times = (time.time_ns() // 1000) - 10_000_000 + np.arange(n, dtype=np.int64) * 1_000_000
    headers = {"content-type": codec.BINARY_TYPE}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    body = codec.encode_binary(times, np.ones((n, 4), dtype=np.float32))
    return client.post(f"/v1/sensors/{sensor_id}/embeddings", content=body,
                       headers=headers).status_code


def test_builtin_and_custom_embeddings(admin: TestClient) -> None:
    machine = make_machine(admin)
    builtin = create(admin, machine, name="a", embedding={"kind": "logmel-v1"},
                     sample_rate=44100)
    assert builtin.status_code == 201, builtin.text
    body = builtin.json()
    assert body["embedding"] == {"kind": "logmel-v1", "dim": 128, "builtin": True}
    assert (body["window_s"], body["sample_rate"], body["last_seen_at"]) == (1.0, 44100, None)
    assert body["ingest_token"].startswith("est_")
    explicit = create(admin, machine, name="b", embedding={"kind": "logmel-v1", "dim": 128})
    assert explicit.status_code == 201
    custom = create(admin, machine, name="c", embedding={"kind": "openl3", "dim": 512},
                    window_s=0.5)
    assert custom.status_code == 201
    assert custom.json()["embedding"] == {"kind": "openl3", "dim": 512, "builtin": False}
    assert custom.json()["window_s"] == 0.5


def test_invalid_sensor_bodies_are_422(admin: TestClient, conn: psycopg.Connection) -> None:
    machine = make_machine(admin)
    cases = [
        ({"kind": "logmel-v1", "dim": 64}, {}, "has dim 128"),
        ({"kind": "openl3"}, {}, "dim is required"),
        ({"kind": "openl3", "dim": 0}, {}, "dim"),
        ({"kind": "openl3", "dim": 4097}, {}, "dim"),
        ({"kind": "bad kind!", "dim": 4}, {}, "kind"),
        ({"kind": "logmel-v1"}, {"window_s": 2.0}, "uses 1 s windows"),
        ({"kind": "x", "dim": 4}, {"window_s": 0}, "window_s"),
        ({"kind": "x", "dim": 4}, {"sample_rate": 10}, "sample_rate"),
    ]
    for embedding, extra, why in cases:
        response = create(admin, machine, name="s", embedding=embedding, **extra)
        assert response.status_code == 422, (embedding, extra, response.text)
        assert response.headers["content-type"] == PROBLEM
        assert why in str(response.json()), (why, response.json())
    assert conn.execute("SELECT count(*) FROM sensors").fetchone() == (0,)


def test_list_get_and_token_shown_once(admin: TestClient) -> None:
    machine = make_machine(admin)
    other = make_machine(admin, "other")
    for name in ("c", "a", "b"):
        make_sensor(admin, machine, name)
    make_sensor(admin, other, "a")  # same name on another machine is fine
    page = admin.get(f"/v1/machines/{machine}/sensors", params={"limit": 2}).json()
    assert [s["name"] for s in page["items"]] == ["a", "b"] and page["next_offset"] == 2
    rest = admin.get(f"/v1/machines/{machine}/sensors", params={"offset": 2}).json()
    assert [s["name"] for s in rest["items"]] == ["c"] and rest["next_offset"] is None
    one = admin.get(f"/v1/sensors/{page['items'][0]['id']}").json()
    assert one == page["items"][0]
    assert "ingest_token" not in one and "token_hash" not in one
    duplicate = create(admin, machine, name="a", embedding={"kind": "x", "dim": 1})
    assert duplicate.status_code == 409


def test_unknown_machine_or_sensor_is_404(admin: TestClient) -> None:
    assert create(admin, MISSING, name="s", embedding={"kind": "x", "dim": 1}
                  ).status_code == 404
    assert admin.get(f"/v1/machines/{MISSING}/sensors").status_code == 404
    for method, url in (("get", ""), ("patch", ""), ("delete", ""), ("post", "/token"),
                        ("get", "/ingest-errors")):
        response = admin.request(method, f"/v1/sensors/{MISSING}{url}",
                                 json={} if method == "patch" else None)
        assert response.status_code == 404, (method, url, response.text)
        assert response.headers["content-type"] == PROBLEM
    assert send(admin, MISSING, None) == 404


def test_patch_sensor(admin: TestClient) -> None:
    machine = make_machine(admin)
    sensor = make_sensor(admin, machine)
    make_sensor(admin, machine, "taken")
    patched = admin.patch(f"/v1/sensors/{sensor['id']}",
                          json={"name": "mic-2", "sample_rate": 16000, "window_s": 2.0})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["sample_rate"],
            patched.json()["window_s"]) == ("mic-2", 16000, 2.0)
    cleared = admin.patch(f"/v1/sensors/{sensor['id']}", json={"sample_rate": None}).json()
    assert (cleared["sample_rate"], cleared["name"]) == (None, "mic-2")
    assert admin.patch(f"/v1/sensors/{sensor['id']}", json={"name": "taken"}).status_code == 409
    frozen = admin.patch(f"/v1/sensors/{sensor['id']}", json={"embedding": {"kind": "y"}})
    assert frozen.status_code == 422
    builtin = create(admin, machine, name="lm", embedding={"kind": "logmel-v1"}).json()
    wrong = admin.patch(f"/v1/sensors/{builtin['id']}", json={"window_s": 0.5})
    assert wrong.status_code == 422 and "uses 1 s windows" in wrong.json()["detail"]


def test_token_rules(admin: TestClient) -> None:
    machine = make_machine(admin)
    sensor, other = make_sensor(admin, machine), make_sensor(admin, machine, "other")
    token, other_token = sensor["ingest_token"], other["ingest_token"]
    reader = admin.post("/v1/api-keys", json={"name": "r", "role": "read"}).json()["key"]
    assert send(admin, sensor["id"], token) == 200
    assert send(admin, sensor["id"], other_token) == 403
    assert send(admin, sensor["id"], reader) == 403
    assert send(admin, sensor["id"], "") == 401
    assert send(admin, sensor["id"], "est_garbage") == 401
    as_sensor = {"authorization": f"Bearer {token}"}
    for url in (f"/v1/sensors/{sensor['id']}", f"/v1/machines/{machine}/sensors",
                f"/v1/sensors/{sensor['id']}/ingest-errors"):
        assert admin.get(url, headers=as_sensor).status_code == 403, url
        assert admin.get(url, headers={"authorization": f"Bearer {reader}"}).status_code == 200
    assert admin.post(f"/v1/sensors/{sensor['id']}/token", headers=as_sensor).status_code == 403
    assert admin.post(f"/v1/sensors/{sensor['id']}/token",
                      headers={"authorization": f"Bearer {reader}"}).status_code == 403
    assert admin.delete(f"/v1/sensors/{sensor['id']}", headers=as_sensor).status_code == 403


def test_rotate_token(admin: TestClient) -> None:
    sensor = make_sensor(admin, make_machine(admin))
    old = sensor["ingest_token"]
    rotated = admin.post(f"/v1/sensors/{sensor['id']}/token")
    assert rotated.status_code == 200
    new = rotated.json()["ingest_token"]
    assert new != old and new.startswith("est_")
    assert send(admin, sensor["id"], old) == 401
    assert send(admin, sensor["id"], new) == 200
    seen = admin.get(f"/v1/sensors/{sensor['id']}").json()["last_seen_at"]
    assert seen is not None


def test_delete_sensor_with_data_needs_confirmation(admin: TestClient,
                                                    conn: psycopg.Connection) -> None:
    machine = make_machine(admin)
    sensor, other = make_sensor(admin, machine), make_sensor(admin, machine, "other")
    empty = make_sensor(admin, machine, "empty")
    assert send(admin, sensor["id"], None, n=5) == 200
    assert send(admin, other["id"], None, n=2) == 200
    assert admin.delete(f"/v1/sensors/{empty['id']}").status_code == 204
    refused = admin.delete(f"/v1/sensors/{sensor['id']}")
    assert refused.status_code == 409
    assert refused.json()["data"] == {"windows": 5, "scores": 0, "predictions": 0,
                                      "audio_chunks": 0}
    assert "5 windows" in refused.json()["detail"]
    done = admin.delete(f"/v1/sensors/{sensor['id']}", params={"confirm": "delete-data"})
    assert done.status_code == 204
    assert admin.get(f"/v1/sensors/{sensor['id']}").status_code == 404
    for table in ("embeddings", "ingest_batches"):
        rows = conn.execute(f"SELECT sensor_id::text, count(*) FROM {table} GROUP BY 1"
                            ).fetchall()
        assert rows == [(other["id"], 2 if table == "embeddings" else 1)], table
    assert send(admin, sensor["id"], sensor["ingest_token"]) == 401


def test_ingest_errors_newest_first(admin: TestClient, conn: psycopg.Connection) -> None:
    sensor = make_sensor(admin, make_machine(admin))
    with conn.transaction():
        for i in range(3):
            conn.execute(
                "INSERT INTO ingest_errors (sensor_id, topic, source, reason, payload_excerpt,"
                " received_at) VALUES (%s, 'earshot/sensors/x/embeddings', 'mqtt', %s, '{', "
                "now() - make_interval(secs => %s))", (sensor["id"], f"reason {i}", 10 - i))
        conn.execute("INSERT INTO ingest_errors (sensor_id, source, reason) "
                     "VALUES (NULL, 'mqtt', 'unknown sensor')")
    page = admin.get(f"/v1/sensors/{sensor['id']}/ingest-errors", params={"limit": 2}).json()
    assert [e["reason"] for e in page["items"]] == ["reason 2", "reason 1"]
    assert page["next_offset"] == 2
    assert page["items"][0]["topic"] == "earshot/sensors/x/embeddings"
    rest = admin.get(f"/v1/sensors/{sensor['id']}/ingest-errors", params={"offset": 2}).json()
    assert [e["reason"] for e in rest["items"]] == ["reason 0"] and rest["next_offset"] is None


def test_deleting_scored_data_marks_its_rollup_minutes_for_recompute(
        admin: TestClient, conn: psycopg.Connection) -> None:
    machine = make_machine(admin)
    sensor = make_sensor(admin, machine)
    with conn.transaction():
        conn.execute(
            "INSERT INTO scores (machine_id, sensor_id, t, model_version, score, threshold, "
            "anomalous) SELECT %s, %s, '2026-11-20T10:00:00Z'::timestamptz + i * interval '30 s',"
            " 1, 0.5, 1.0, false FROM generate_series(0, 3) AS i", (machine, sensor["id"]))
    done = admin.delete(f"/v1/sensors/{sensor['id']}", params={"confirm": "delete-data"})
    assert done.status_code == 204, done.text
    dirty = conn.execute("SELECT bucket FROM rollup_dirty WHERE machine_id = %s ORDER BY 1",
                         (machine,)).fetchall()
    assert [row[0].isoformat() for row in dirty] == ["2026-11-20T10:00:00+00:00",
                                                     "2026-11-20T10:01:00+00:00"]
