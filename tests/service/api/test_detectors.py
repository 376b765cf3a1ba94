"""`GET /v1/detectors` and `PUT|GET /v1/machines/{id}/detector`."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from fastapi.testclient import TestClient

from detectors import ALGORITHMS
from tests.service.training.helpers import make_machine

PROBLEM = "application/problem+json"


def put(admin: TestClient, machine_id: object, body: dict[str, Any]) -> Any:
    return admin.put(f"/v1/machines/{machine_id}/detector", json=body)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


def test_catalogue_lists_algorithms_params_and_defaults(admin: TestClient) -> None:
    response = admin.get("/v1/detectors")
    assert response.status_code == 200
    body = response.json()
    by_name = {a["name"]: a for a in body["algorithms"]}
    assert set(by_name) == set(ALGORITHMS)
    iforest = {p["name"]: p for p in by_name["iforest"]["params"]}
    assert iforest["n_estimators"]["default"] == 200 and iforest["n_estimators"]["type"] == "int"
    assert {p["name"] for p in body["threshold"]} == {"method", "q"}


def test_put_then_get_fills_defaults(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    response = put(admin, machine_id, {"algorithm": "knn", "params": {"n_neighbors": 7}})
    assert response.status_code == 200, response.text
    body = admin.get(f"/v1/machines/{machine_id}/detector").json()
    assert body == response.json()
    assert body["algorithm"] == "knn" and body["target"] == "detector"
    assert body["params"] == {"n_neighbors": 7, "method": "mean", "max_train": 10000,
                              "random_state": 0}
    assert body["threshold"] == {"method": "quantile", "q": 0.99}
    assert (body["activation"], body["backfill"], body["training_window"],
            body["retrain_cron"], body["next_retrain_at"]) == ("auto", 86400.0, None, None, None)


def test_put_replaces_the_config_and_reports_the_next_retrain(admin: TestClient,
                                                              conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    put(admin, machine_id, {"algorithm": "knn", "params": {"n_neighbors": 7}})
    response = put(admin, machine_id, {
        "algorithm": "gmm", "threshold": {"method": "gamma", "q": 0.995},
        "retrain_cron": "30  2 * * 1", "training_window": 604800, "activation": "manual",
        "backfill": 3600})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["params"]["n_components"] == 4 and "n_neighbors" not in body["params"]
    assert body["threshold"] == {"method": "gamma", "q": 0.995}
    assert body["retrain_cron"] == "30 2 * * 1"  # whitespace normalised
    assert (body["training_window"], body["activation"], body["backfill"]) == (
        604800.0, "manual", 3600.0)
    assert body["next_retrain_at"].endswith("02:30:00Z") or "T02:30:00" in body["next_retrain_at"]
    rows = conn.execute("SELECT algorithm FROM model_configs WHERE machine_id = %s",
                        (machine_id,)).fetchall()
    assert rows == [("gmm",)]


def test_unknown_algorithm_lists_the_valid_ones(admin: TestClient,
                                                conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    body = assert_problem(put(admin, machine_id, {"algorithm": "svm"}), 422)
    assert "svm" in body["detail"]
    assert body["valid"] == sorted(ALGORITHMS)
    assert conn.execute("SELECT count(*) FROM model_configs").fetchone() == (0,)


BAD_PARAMS = [
    ({"n_trees": 10}, "unknown parameter 'n_trees'"),
    ({"n_estimators": 5}, "n_estimators: 5 is out of range"),
    ({"n_estimators": "many"}, "expected int"),
    ({"n_estimators": True}, "expected int"),
]


def test_bad_params_list_the_valid_ones(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    for params, fragment in BAD_PARAMS:
        body = assert_problem(put(admin, machine_id, {"algorithm": "iforest",
                                                      "params": params}), 422)
        assert fragment in body["detail"]
    assert "valid parameters: n_estimators, max_samples, max_features" in put(
        admin, machine_id, {"algorithm": "iforest", "params": {"n_trees": 1}}).json()["detail"]
    assert conn.execute("SELECT count(*) FROM model_configs").fetchone() == (0,)


def test_bad_threshold_is_rejected(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    body = assert_problem(put(admin, machine_id, {"algorithm": "iforest",
                                                  "threshold": {"q": 1.5}}), 422)
    assert "q: 1.5 is out of range" in body["detail"]


BAD_CRONS = [
    ("* * * * * *", "Wrong number of fields; got 6, expected 5"),
    ("61 * * * *", "higher than the maximum value (59)"),
    ("0 3 * * funday", 'Invalid weekday name "funday"'),
    ("", "Wrong number of fields"),
]
INVALID_BODIES: list[dict[str, Any]] = [
    {"algorithm": "iforest", "training_window": 0},
    {"algorithm": "iforest", "training_window": "P1D"},
    {"algorithm": "iforest", "backfill": -1},
    {"algorithm": "iforest", "activation": "sometimes"},
    {"algorithm": "iforest", "colour": "blue"},
    {"params": {}},
]


def test_invalid_cron_says_why(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    for cron, fragment in BAD_CRONS:
        body = assert_problem(put(admin, machine_id, {"algorithm": "iforest",
                                                      "retrain_cron": cron}), 422)
        assert fragment in body["detail"] and "retrain_cron" in body["detail"], cron
    assert conn.execute("SELECT count(*) FROM model_configs").fetchone() == (0,)


def test_invalid_fields_are_rejected(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    for body in INVALID_BODIES:
        assert_problem(put(admin, machine_id, body), 422)
    assert conn.execute("SELECT count(*) FROM model_configs").fetchone() == (0,)


def test_unknown_machine_and_missing_config(admin: TestClient, conn: psycopg.Connection) -> None:
    assert_problem(put(admin, uuid.uuid4(), {"algorithm": "iforest"}), 404)
    machine_id, _ = make_machine(conn)
    body = assert_problem(admin.get(f"/v1/machines/{machine_id}/detector"), 404)
    assert "no detector configured" in body["detail"]


def test_read_keys_read_and_admins_write(admin: TestClient, app_client: TestClient,
                                         conn: psycopg.Connection) -> None:
    machine_id, _ = make_machine(conn)
    assert put(admin, machine_id, {"algorithm": "ecod"}).status_code == 200
    read_key = admin.post("/v1/api-keys", json={"name": "viewer", "role": "read"}).json()["key"]
    reader = {"Authorization": f"Bearer {read_key}"}
    assert app_client.get(f"/v1/machines/{machine_id}/detector", headers=reader).status_code == 200
    assert app_client.get("/v1/detectors", headers=reader).status_code == 200
    denied = app_client.put(f"/v1/machines/{machine_id}/detector", headers=reader,
                            json={"algorithm": "gmm"})
    assert_problem(denied, 403)
    assert_problem(app_client.get("/v1/detectors", headers={"Authorization": "Bearer x"}), 401)
