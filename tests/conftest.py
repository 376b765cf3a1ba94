"""Shared fixtures: the real embedded TimescaleDB, a fresh database per test, an app and
an authenticated client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # as `earshot` does: see service.cli

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from service.app import create_app
from service.db import make_pool
from service.settings import Settings
from service.training import models as training_models
from tests import db
from tests.service.alerting.receiver import Receiver

DATA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
ADMIN_KEY = "test_admin_key_0123456789abcdefghijklmnop"


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    settings = Settings(admin_key=ADMIN_KEY, webhook_allow_private=True)
    db.build_template(settings)
    return settings


@pytest.fixture(scope="session")
def dropper() -> Iterator[ThreadPoolExecutor]:
    """Drops finished test databases in the background: a DROP DATABASE costs seconds on
    a busy box and no test waits for it; the session waits for all of them at the end."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="dropdb") as executor:
        yield executor


@pytest.fixture
def database_url(base_settings: Settings, dropper: ThreadPoolExecutor) -> Iterator[str]:
    name = db.clone(base_settings)
    try:
        yield db.database_url(base_settings, name)
    finally:
        dropper.submit(db.drop, base_settings, name)


@pytest.fixture
def settings(base_settings: Settings, database_url: str) -> Settings:
    return base_settings.model_copy(update={"database_url": database_url})


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(database_url) as connection:
        yield connection


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def admin(app_client: TestClient) -> TestClient:
    app_client.headers["Authorization"] = f"Bearer {ADMIN_KEY}"
    return app_client

# Real processes (uvicorn API, Mosquitto) for end-to-end tests: fixtures `live_api`, `mosquitto`.
pytest_plugins = ["tests.live"]


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    """A worker-style pool (not autocommit) on the test database, as the scheduler's."""
    # Model versions restart at 1 in every test database: a cached model of an earlier
    # test must not be taken for this one's.
    training_models.clear_cache()
    the_pool = make_pool(settings, max_size=6)
    the_pool.open(wait=True)
    try:
        yield the_pool
    finally:
        the_pool.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 that verifies Standard Webhooks signatures."""
    the_receiver = Receiver().start()
    try:
        yield the_receiver
    finally:
        the_receiver.stop()
