"""A connection pool on the test database for the in-process job runner and scorer, and a
signature-checking webhook receiver on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg_pool import ConnectionPool

from service.db import make_pool
from service.settings import Settings
from service.training import models as training_models
from tests.service.alerting.receiver import Receiver


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    # Model versions restart at 1 in every test database: a cached model of an earlier
    # test must not be taken for this one's.
    training_models.clear_cache()
    with make_pool(settings, max_size=4) as the_pool:
        yield the_pool


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    the_receiver = Receiver().start()
    try:
        yield the_receiver
    finally:
        the_receiver.stop()
