"""Every request in `corpus.json` is answered 4xx with a problem+json detail that says
what is wrong; afterwards the database holds nothing from them and the service is healthy.

One database and one app serve the whole corpus (module scope), so the final check sees
the effect of every case together."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from ingest import codec
from service.app import create_app
from service.settings import Settings
from tests import db
from tests.badinput.bodies import SENSOR_DIM, render
from tests.conftest import ADMIN_KEY

CORPUS = json.loads((Path(__file__).parent / "corpus.json").read_text())["cases"]
MAX_BODY = 65536
MAX_WINDOWS = 100
TABLES = """SELECT tablename FROM pg_tables WHERE schemaname = 'public'
            AND tablename <> 'schema_migrations' ORDER BY tablename"""


@dataclass
class World:
    client: TestClient
    url: str
    ids: dict[str, str]
    tokens: dict[str, str]
    before: dict[str, int]


def table_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        names = [row[0] for row in conn.execute(TABLES)]
        return {name: conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # type: ignore[index]
                for name in names}


def _seed(client: TestClient) -> tuple[dict[str, str], dict[str, str]]:
    def created(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(path, json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    machine = created("/v1/machines", {"name": "press", "kind": "pump"})["id"]
    other = created("/v1/machines", {"name": "fan", "kind": "fan"})["id"]
    vendor = created(f"/v1/machines/{machine}/sensors",
                     {"name": "v", "embedding": {"kind": "vendor-x", "dim": SENSOR_DIM}})
    audio = created(f"/v1/machines/{machine}/sensors",
                    {"name": "a", "embedding": {"kind": "logmel-v1"}})
    foreign = created(f"/v1/machines/{other}/sensors",
                      {"name": "f", "embedding": {"kind": "vendor-x", "dim": SENSOR_DIM}})
    read_key = created("/v1/api-keys", {"name": "reader", "role": "read"})["key"]
    ids = {"machine": machine, "sensor": vendor["id"], "audio_sensor": audio["id"],
           "other_sensor": foreign["id"], "missing": str(uuid.uuid4())}
    tokens = {"admin": ADMIN_KEY, "read": read_key, "sensor": vendor["ingest_token"],
              "audio_sensor": audio["ingest_token"], "other_sensor": foreign["ingest_token"],
              "garbage": "esk_" + "x" * 43}
    return ids, tokens


@pytest.fixture(scope="module")
def world(base_settings: Settings) -> Iterator[World]:
    name = db.clone(base_settings)
    url = db.database_url(base_settings, name)
    settings = base_settings.model_copy(update={
        "database_url": url, "max_body_bytes": MAX_BODY, "max_batch_windows": MAX_WINDOWS,
        "webhook_allow_private": False})
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
            ids, tokens = _seed(client)
            del client.headers["Authorization"]
            yield World(client, url, ids, tokens, table_counts(url))
    finally:
        db.drop(base_settings, name)


def substitutions(ids: dict[str, str]) -> dict[str, str]:
    now_us = time.time_ns() // 1000
    return {**{f"{{{k}}}": v for k, v in ids.items()},
            "{recent}": codec.to_rfc3339(now_us - 60_000_000),
            "{recent2}": codec.to_rfc3339(now_us - 59_000_000),
            "{future}": codec.to_rfc3339(now_us + 86_400_000_000)}


def fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace(key, value)
    return text


def send(world: World, case: dict[str, Any]) -> Any:
    values = substitutions(world.ids)
    content, default_type = render(case.get("body"), lambda s: fill(s, values),
                                   time.time_ns() // 1000)
    headers = dict(case.get("headers", {}))
    if case["auth"] != "none":
        headers.setdefault("Authorization", f"Bearer {world.tokens[case['auth']]}")
    if default_type and "Content-Type" not in headers:
        headers["Content-Type"] = default_type
    return world.client.request(case["method"], fill(case["path"], values), content=content,
                                headers=headers)


def test_corpus_is_big_and_covers_every_category() -> None:
    names = [case["name"] for case in CORPUS]
    assert len(names) == len(set(names)), "case names must be unique"
    by_category = Counter(case["category"] for case in CORPUS)
    print(f"{len(CORPUS)} bad requests: {dict(sorted(by_category.items()))}")
    assert len(CORPUS) >= 60
    assert len(by_category) >= 15


@pytest.mark.parametrize("case", CORPUS, ids=[case["name"] for case in CORPUS])
def test_bad_request_is_a_clear_4xx_problem(world: World, case: dict[str, Any]) -> None:
    response = send(world, case)
    low, high = case["expect"]
    assert low <= response.status_code <= high, f"{response.status_code}: {response.text[:500]}"
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json", response.text[:300]
    problem = response.json()
    assert problem["status"] == response.status_code
    assert problem["title"] and problem["type"].startswith("https://")
    assert case["detail"].lower() in problem["detail"].lower(), problem["detail"]
    if response.status_code == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_nothing_was_stored_and_the_service_is_healthy(world: World) -> None:
    """Runs after the corpus (file order): every table holds what the seed put there."""
    assert table_counts(world.url) == world.before
    assert world.client.get("/healthz").status_code == 200
    ready = world.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    still = world.client.get("/v1/machines", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert still.status_code == 200 and len(still.json()["items"]) == 2
