"""Operating conditions sent by the sensor with its embedding windows: the JSON body's
`condition` or `?condition=` on every encoding, stored as the machine's condition ranges
(one range while the stream stays in a condition), which training reads like ranges set
through `/conditions`. Bad input is a 422 problem and stores nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import orjson
import psycopg
from fastapi.testclient import TestClient

from ingest import codec
from service.training.conditions import for_machine
from tests.service.api.test_detectors import assert_problem

DIM = 128
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _setup(admin: TestClient) -> tuple[str, str]:
    machine = admin.post("/v1/machines", json={"name": "fan", "kind": "fan"}).json()["id"]
    sensor = admin.post(f"/v1/machines/{machine}/sensors", json={"name": "mic"}).json()
    assert sensor["embedding"]["dim"] == DIM
    return machine, sensor["id"]


def _windows(t0_us: int, first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    times = t0_us + (first + np.arange(n, dtype=np.int64)) * 1_000_000
    return times, np.random.default_rng(first).normal(size=(n, DIM)).astype(np.float32)


def _json(times: np.ndarray, values: np.ndarray, **extra: Any) -> bytes:
    windows = [{"t": codec.to_rfc3339(int(t)), "v": v.tolist()}
               for t, v in zip(times, values, strict=True)]
    return orjson.dumps({"windows": windows, **extra})


def _ndjson(times: np.ndarray, values: np.ndarray) -> bytes:
    return b"\n".join(orjson.dumps({"t": codec.to_rfc3339(int(t)), "v": v.tolist()})
                      for t, v in zip(times, values, strict=True))


def _post(admin: TestClient, sensor: str, body: bytes, media: str,
          **params: str) -> Any:
    return admin.post(f"/v1/sensors/{sensor}/embeddings", content=body, params=params,
                      headers={"content-type": media})


def _ranges(admin: TestClient, machine: str) -> list[tuple[str, str, str, str]]:
    items = admin.get(f"/v1/machines/{machine}/conditions").json()["items"]
    return [(c["name"], c["start"], c["end"], c["source"]) for c in items]


def _at(t_us: int) -> str:
    return codec.to_rfc3339(t_us)


def test_conditions_sent_with_windows_become_ranges_training_reads(
        admin: TestClient, conn: psycopg.Connection) -> None:
    machine, sensor = _setup(admin)
    t0 = (int(datetime.now(UTC).timestamp()) - 3600) * 1_000_000
    batches = [_windows(t0, 10 * k, 10) for k in range(6)]
    sent = [
        _post(admin, sensor, _json(*batches[0], condition="1800rpm"), codec.JSON_TYPE),
        _post(admin, sensor, codec.encode_binary(*batches[1]), codec.BINARY_TYPE,
              condition="1800rpm"),
        _post(admin, sensor, _ndjson(*batches[2]), codec.NDJSON_TYPE, condition="1800rpm"),
        _post(admin, sensor, codec.encode_binary(*batches[3]), codec.BINARY_TYPE,
              condition="2400rpm"),
        _post(admin, sensor, _json(*batches[4]), codec.JSON_TYPE, condition="1800rpm"),
        _post(admin, sensor, codec.encode_binary(*batches[5]), codec.BINARY_TYPE),
    ]
    assert [r.status_code for r in sent] == [200] * 6, [r.text for r in sent]
    # A retry of the first batch (same windows, same condition) changes nothing.
    again = _post(admin, sensor, _json(*batches[0], condition="1800rpm"), codec.JSON_TYPE)
    assert again.json() == {"accepted": 0, "duplicates": 10}
    last = [int(b[0][-1]) + 1 for b in batches]
    assert _ranges(admin, machine) == [
        ("1800rpm", _at(t0), _at(last[2]), "sensor"),  # three batches, three encodings
        ("2400rpm", _at(int(batches[3][0][0])), _at(last[3]), "sensor"),
        ("1800rpm", _at(int(batches[4][0][0])), _at(last[4]), "sensor"),
    ]
    times = [EPOCH + timedelta(microseconds=int(t)) for b in batches for t in b[0]]
    names = for_machine(conn, machine, times)
    assert names is not None
    assert list(names) == (["1800rpm"] * 30 + ["2400rpm"] * 10 + ["1800rpm"] * 10
                           + ["default"] * 10)


def test_bad_conditions_are_refused_and_nothing_is_stored(
        admin: TestClient, conn: psycopg.Connection) -> None:
    machine, sensor = _setup(admin)
    t0 = (int(datetime.now(UTC).timestamp()) - 3600) * 1_000_000
    times, values = _windows(t0, 0, 3)
    binary = codec.encode_binary(times, values)
    refused = [
        (_post(admin, sensor, binary, codec.BINARY_TYPE, condition="a\x01b"), "condition"),
        (_post(admin, sensor, binary, codec.BINARY_TYPE, condition=""), "condition"),
        (_post(admin, sensor, binary, codec.BINARY_TYPE, condition="x" * 201), "condition"),
        (_post(admin, sensor, _json(times, values, condition=1800), codec.JSON_TYPE),
         "condition must be a string"),
        (_post(admin, sensor, _json(times, values, condition="a"), codec.JSON_TYPE,
               condition="b"), "disagree"),
        (admin.post(f"/v1/sensors/{sensor}/embeddings?condition=a&condition=b",
                    content=binary, headers={"content-type": codec.BINARY_TYPE}),
         "more than once"),
    ]
    for response, detail in refused:
        assert_problem(response, 422)
        assert detail in response.json()["detail"], response.json()
    assert _ranges(admin, machine) == []
    row = conn.execute("SELECT count(*) FROM embeddings").fetchone()
    assert row == (0,)


def test_a_condition_spelled_as_attributes_is_the_one_the_api_names_by_attributes(
        admin: TestClient, conn: psycopg.Connection) -> None:
    machine, sensor = _setup(admin)
    t0 = (int(datetime.now(UTC).timestamp()) - 3600) * 1_000_000
    first, second = _windows(t0, 0, 10), _windows(t0, 10, 10)
    sent = [_post(admin, sensor, codec.encode_binary(*first), codec.BINARY_TYPE,
                  condition="rpm=1800,load=high"),
            _post(admin, sensor, _json(*second, condition="load=high, rpm=1800"),
                  codec.JSON_TYPE, condition="rpm=1800,load=high")]
    assert [r.status_code for r in sent] == [200, 200], [r.text for r in sent]
    later = _at(t0 + 100 * 1_000_000)
    through_api = admin.post(f"/v1/machines/{machine}/conditions", json={
        "start": later, "end": _at(t0 + 200 * 1_000_000),
        "attributes": {"load": "high", "rpm": 1800}})
    assert through_api.status_code == 201, through_api.text
    items = admin.get(f"/v1/machines/{machine}/conditions").json()["items"]
    assert [(c["name"], c["attributes"], c["source"]) for c in items] == [
        ("load=high,rpm=1800", {"load": "high", "rpm": 1800}, "sensor"),  # one range
        ("load=high,rpm=1800", {"load": "high", "rpm": 1800}, "user")]
    times = [EPOCH + timedelta(microseconds=int(t)) for t in (*first[0], *second[0])]
    names = for_machine(conn, machine, times)
    assert names is not None
    assert list(names) == ["load=high,rpm=1800"] * 20
