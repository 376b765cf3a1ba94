from __future__ import annotations

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import numpy as np
import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient

from ingest import codec
from ingest.store import read_windows
from service.app import create_app
from service.settings import Settings
from tests.conftest import ADMIN_KEY

DIM = 8
PROBLEM = "application/problem+json"
SMALL_BODY = 4096
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
def sensor_id(admin: TestClient) -> str:
    machine = admin.post("/v1/machines", json={"name": "m", "kind": "pump"}).json()["id"]
    response = admin.post(f"/v1/machines/{machine}/sensors",
                          json={"name": "s", "embedding": {"kind": "vendor-x", "dim": DIM}})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def small_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"max_body_bytes": SMALL_BODY})


@pytest.fixture
def small_client(small_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(small_settings), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
        yield client


def now_us() -> int:
    return time.time_ns() // 1000


def windows(n: int, start_us: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Start times with microsecond parts and float32 values across many magnitudes."""
    rng = np.random.default_rng(seed)
    times = start_us + np.arange(n, dtype=np.int64) * 1_000_000 + rng.integers(0, 999_999, n)
    values = (rng.standard_normal((n, DIM)) * 10.0 ** rng.integers(-30, 30, (n, DIM)))
    values = values.astype(np.float32)
    values[0, :4] = [0.0, -0.0, np.float32(1e-45), np.finfo(np.float32).max]
    return times, values


def json_windows(times: np.ndarray, values: np.ndarray) -> list[dict]:
    # float(float32) is exact in a double, and json writes doubles round-trippably.
    return [{"t": codec.to_rfc3339(int(t)), "v": [float(x) for x in row]}
            for t, row in zip(times, values, strict=True)]


def encode(kind: str, times: np.ndarray, values: np.ndarray) -> tuple[str, bytes]:
    if kind == "binary":
        return codec.BINARY_TYPE, codec.encode_binary(times, values)
    items = json_windows(times, values)
    if kind == "json":
        return codec.JSON_TYPE, json.dumps({"windows": items}).encode()
    return codec.NDJSON_TYPE, "".join(json.dumps(item) + "\n" for item in items).encode()


def post(client: TestClient, sensor_id: str, content_type: str, body: bytes | object,
         **headers: str) -> httpx.Response:
    return client.post(f"/v1/sensors/{sensor_id}/embeddings", content=body,
                       headers={"content-type": content_type, **headers})


def stored(conn: psycopg.Connection, sensor_id: str) -> int:
    row = conn.execute("SELECT count(*) FROM embeddings WHERE sensor_id = %s", (sensor_id,)
                       ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("kind", ["json", "ndjson", "binary"])
def test_round_trip_is_bit_exact_and_idempotent(admin: TestClient, conn: psycopg.Connection,
                                                sensor_id: str, kind: str) -> None:
    times, values = windows(50, now_us() - 3_600_000_000)
    content_type, body = encode(kind, times, values)
    first = post(admin, sensor_id, content_type, body)
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 50, "duplicates": 0}
    got_t, got_v = read_windows(conn, UUID(sensor_id), EPOCH, datetime.now(UTC), DIM)
    assert [(t - EPOCH) // timedelta(microseconds=1) for t in got_t] == times.tolist()
    assert np.array_equal(got_v.view(np.uint32), values.view(np.uint32))
    retry = post(admin, sensor_id, content_type, body)
    assert retry.json() == {"accepted": 0, "duplicates": 50}
    more_t, more_v = windows(10, int(times[-1]) + 1_000_000, seed=1)
    overlap = encode(kind, np.concatenate([times[-5:], more_t]),
                     np.concatenate([values[-5:], more_v]))
    assert post(admin, sensor_id, *overlap).json() == {"accepted": 10, "duplicates": 5}
    assert stored(conn, sensor_id) == 60


def _bad_batches() -> list[tuple[str, str, bytes, int, int | None, str]]:
    """(case, content type, body, status, offending window, words in the detail)."""
    now = now_us()
    good = {"t": codec.to_rfc3339(now - 10_000_000), "v": [0.5] * DIM}

    def batch(bad: dict) -> bytes:
        return json.dumps({"windows": [good, bad]}).encode()

    def at(us: int) -> str:
        return codec.to_rfc3339(us)

    times, values = windows(2, now - 60_000_000)
    inf = values.copy()
    inf[1, 3] = np.inf
    cut = codec.encode_binary(times, values)[:-5]
    many_t = now - 20_000_000_000 + np.arange(10_001, dtype=np.int64) * 1_000_000
    many = codec.encode_binary(many_t, np.zeros((10_001, DIM), np.float32))
    return [
        ("wrong dim json", codec.JSON_TYPE, batch({"t": good["t"][:-1] + "1Z", "v": [1.0] * 7}),
         422, 1, "7 elements, expected 8"),
        ("wrong dim binary", codec.BINARY_TYPE,
         codec.encode_binary(times, values[:, :7]), 422, None, "dim is 7"),
        ("nan json", codec.JSON_TYPE,
         batch({"t": at(now - 5_000_000), "v": [float("nan")] * DIM}), 422, 1, "NaN"),
        ("inf binary", codec.BINARY_TYPE, codec.encode_binary(times, inf), 422, 1, "v[3]"),
        ("missing t", codec.JSON_TYPE, batch({"v": [1.0] * DIM}), 422, 1, "missing 't'"),
        ("naive t", codec.NDJSON_TYPE, json.dumps(good).encode() + b"\n" + json.dumps(
            {"t": "2026-11-25T10:00:00", "v": [1.0] * DIM}).encode(), 422, 1, "no UTC offset"),
        ("too old", codec.JSON_TYPE, batch({"t": at(now - 367 * 86_400_000_000),
                                            "v": [1.0] * DIM}), 422, 1,
         "before the server time"),
        ("future", codec.JSON_TYPE, batch({"t": at(now + 3_600_000_000), "v": [1.0] * DIM}),
         422, 1, "after the server time"),
        ("too many", codec.BINARY_TYPE, many, 413, 10_000, "10001 windows"),
        ("malformed json", codec.JSON_TYPE, b'{"windows": [{"t": ', 400, None, "malformed"),
        ("malformed ndjson", codec.NDJSON_TYPE, json.dumps(good).encode() + b"\n{oops", 400,
         1, "line 2"),
        ("truncated binary", codec.BINARY_TYPE, cut, 400, None, "truncated"),
        ("empty batch", codec.JSON_TYPE, b'{"windows": []}', 422, None, "no windows"),
        ("text/plain", "text/plain", batch(good), 415, None, "not accepted"),
        ("no content type", "", batch(good), 415, None, "no Content-Type"),
    ]


def test_each_bad_batch_is_rejected_whole(admin: TestClient, conn: psycopg.Connection,
                                          sensor_id: str) -> None:
    # One database for all cases (a clone per case costs more than the cases themselves).
    for case, content_type, body, status, window, words in _bad_batches():
        response = post(admin, sensor_id, content_type, body)
        assert response.status_code == status, (case, response.text)
        assert response.headers["content-type"] == PROBLEM, case
        problem = response.json()
        assert problem.get("window") == window, (case, problem)
        assert words in problem["detail"], (case, problem)
        assert stored(conn, sensor_id) == 0, case
    assert conn.execute("SELECT count(*) FROM ingest_batches").fetchone() == (0,)
    assert admin.get(f"/v1/sensors/{sensor_id}").json()["last_seen_at"] is None


def test_body_limit_by_content_length_and_by_chunks(small_client: TestClient,
                                                    conn: psycopg.Connection) -> None:
    machine = small_client.post("/v1/machines", json={"name": "m", "kind": "k"}).json()["id"]
    sensor = small_client.post(f"/v1/machines/{machine}/sensors", json={
        "name": "s", "embedding": {"kind": "vendor-x", "dim": DIM}}).json()["id"]
    times, values = windows(150, now_us() - 600_000_000)
    body = codec.encode_binary(times, values)  # 6,016 bytes
    declared = post(small_client, sensor, codec.BINARY_TYPE, body)
    assert declared.status_code == 413
    assert "Content-Length is 6,016 bytes" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:
        yield from (body[i:i + 1000] for i in range(0, len(body), 1000))

    streamed = post(small_client, sensor, codec.BINARY_TYPE, chunks())
    assert streamed.status_code == 413, streamed.text
    assert "exceeds 4,096 bytes" in streamed.json()["detail"]
    assert stored(conn, sensor) == 0
    fits = post(small_client, sensor, codec.BINARY_TYPE, codec.encode_binary(times[:50],
                                                                              values[:50]))
    assert fits.json() == {"accepted": 50, "duplicates": 0}


@pytest.fixture
def live_server(small_settings: Settings) -> Iterator[tuple[str, int]]:
    """The app under a real uvicorn on 127.0.0.1, for a chunked upload over a socket."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(small_settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield sock.getsockname()
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_streamed_body_is_refused_before_it_ends(live_server: tuple[str, int],
                                                 sensor_id_live: str,
                                                 conn: psycopg.Connection) -> None:
    """A chunked body without Content-Length: the server answers 413 once 4 KiB have
    arrived, while the client still has most of its 256 KiB to send."""
    head = (f"POST /v1/sensors/{sensor_id_live}/embeddings HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {ADMIN_KEY}\r\nContent-Type: {codec.BINARY_TYPE}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"400\r\n" + b"\0" * 1024 + b"\r\n"
    sent = 0
    with socket.create_connection(live_server, timeout=10) as client:
        client.sendall(head)
        for _ in range(256):
            if select.select([client], [], [], 0.05)[0]:
                break
            try:
                client.sendall(chunk)
            except OSError:  # the server may close its side once it has answered
                break
            sent += 1024
        response = client.recv(65536).decode(errors="replace")
    assert response.startswith("HTTP/1.1 413"), response[:200]
    assert sent < 256 * 1024
    assert stored(conn, sensor_id_live) == 0


@pytest.fixture
def sensor_id_live(small_client: TestClient) -> str:
    machine = small_client.post("/v1/machines", json={"name": "m", "kind": "k"}).json()["id"]
    return str(small_client.post(f"/v1/machines/{machine}/sensors", json={
        "name": "s", "embedding": {"kind": "vendor-x", "dim": DIM}}).json()["id"])


def test_content_length_that_is_not_a_number(admin: TestClient, sensor_id: str) -> None:
    times, values = windows(1, now_us() - 5_000_000)
    request = admin.build_request("POST", f"/v1/sensors/{sensor_id}/embeddings",
                                  content=codec.encode_binary(times, values),
                                  headers={"content-type": codec.BINARY_TYPE})
    request.headers["content-length"] = "12x"
    response = admin.send(request)
    assert response.status_code == 400 and response.headers["content-type"] == PROBLEM


def test_authentication_comes_before_the_body(settings: Settings, sensor_id: str) -> None:
    """No token or a bad one: 401, whatever the body holds (the body is not read before
    the caller is known), and so for a bad sensor id too."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as anonymous:
        for headers in ({}, {"authorization": "Bearer est_" + "x" * 43},
                        {"authorization": "Basic abc"}):
            for body in (b'{"windows": [', b"\xff\xfe", b""):
                response = post(anonymous, sensor_id, codec.JSON_TYPE, body, **headers)
                assert response.status_code == 401, response.text
                assert response.headers["content-type"] == PROBLEM
        other = post(anonymous, "not-a-uuid", codec.JSON_TYPE, b"{")
        assert other.status_code == 401, other.text


def test_a_bad_sensor_id_is_422_for_an_admin(admin: TestClient) -> None:
    response = post(admin, "not-a-uuid", codec.JSON_TYPE, b"{")
    assert response.status_code == 422, response.text
    assert "not a UUID" in response.json()["detail"]


def test_concurrent_batches_are_each_answered_with_their_own_counts(
        admin: TestClient, conn: psycopg.Connection, sensor_id: str) -> None:
    """Concurrent requests share group commits; each still gets its own accepted and
    duplicate counts, and every acknowledged window is stored."""
    start = now_us() - 7_200_000_000
    bodies = []
    for k in range(24):  # pairs overlap by 2 windows: one of each pair sees duplicates
        values = windows(6, start, k)[1]
        times = start + (k // 2) * 10_000_000 + ((k % 2) * 4 + np.arange(6)) * 1_000_000
        bodies.append(codec.encode_binary(times, values))
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: post(admin, sensor_id, codec.BINARY_TYPE, b), bodies))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    for pair in range(12):
        got = [answers[2 * pair].json(), answers[2 * pair + 1].json()]
        assert sum(g["accepted"] for g in got) == 10, got
        assert sum(g["duplicates"] for g in got) == 2, got
    assert stored(conn, sensor_id) == 12 * 10
    assert admin.app.state.ingest_committer.batches == 24  # type: ignore[attr-defined]
