"""The in-process principal cache of the ingest route and its revocation bound."""

from __future__ import annotations

import time
from uuid import uuid4

import numpy as np
from fastapi.testclient import TestClient

from ingest import codec
from service.app import create_app
from service.security import Principal, PrincipalCache
from service.settings import Settings
from tests.conftest import ADMIN_KEY


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_the_ttl() -> None:
    clock = FakeClock()
    cache = PrincipalCache(ttl_s=5.0, clock=clock)
    sensor = Principal(role="sensor", sensor_id=uuid4())
    cache.put(b"digest", sensor)
    clock.now += 4.9
    assert cache.get(b"digest") == sensor
    clock.now += 0.2
    assert cache.get(b"digest") is None


def test_a_zero_ttl_caches_nothing() -> None:
    cache = PrincipalCache(ttl_s=0.0)
    cache.put(b"digest", Principal(role="read"))
    assert cache.get(b"digest") is None


def _send(client: TestClient, sensor_id: str, token: str) -> int:
    times = (time.time_ns() // 1000) - 10_000_000 + np.arange(2, dtype=np.int64) * 1_000_000
    return client.post(f"/v1/sensors/{sensor_id}/embeddings",
                       content=codec.encode_binary(times, np.ones((2, 4), np.float32)),
                       headers={"content-type": codec.BINARY_TYPE,
                                "authorization": f"Bearer {token}"}).status_code


def test_a_cached_token_stops_at_once_when_rotated_or_deleted_here(settings: Settings) -> None:
    """Through the process that rotated it, a token in the cache stops at once; another
    process would trust it for at most EARSHOT_AUTH_CACHE_S."""
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    with TestClient(create_app(settings.model_copy(update={"auth_cache_s": 300.0})),
                    raise_server_exceptions=False) as client:
        machine = client.post("/v1/machines", json={"name": "m", "kind": "pump"},
                              headers=admin).json()["id"]
        sensor = client.post(f"/v1/machines/{machine}/sensors", headers=admin,
                             json={"name": "s", "embedding": {"kind": "v", "dim": 4}}).json()
        assert _send(client, sensor["id"], sensor["ingest_token"]) == 200  # now cached
        rotated = client.post(f"/v1/sensors/{sensor['id']}/token", headers=admin).json()
        assert _send(client, sensor["id"], sensor["ingest_token"]) == 401
        assert _send(client, sensor["id"], rotated["ingest_token"]) == 200
        deleted = client.delete(f"/v1/sensors/{sensor['id']}",
                                params={"confirm": "delete-data"}, headers=admin)
        assert deleted.status_code == 204
        assert _send(client, sensor["id"], rotated["ingest_token"]) == 401


def test_without_invalidation_the_ttl_bounds_revocation(settings: Settings) -> None:
    """A token rotated behind the process's back (another API process) works until the
    cache entry expires, and not after."""
    with TestClient(create_app(settings.model_copy(update={"auth_cache_s": 1.0})),
                    raise_server_exceptions=False) as client:
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        machine = client.post("/v1/machines", json={"name": "m", "kind": "pump"},
                              headers=admin).json()["id"]
        sensor = client.post(f"/v1/machines/{machine}/sensors", headers=admin,
                             json={"name": "s", "embedding": {"kind": "v", "dim": 4}}).json()
        assert _send(client, sensor["id"], sensor["ingest_token"]) == 200
        with client.app.state.pool.connection() as conn:  # type: ignore[attr-defined]
            conn.execute("UPDATE sensors SET token_hash = %s WHERE id = %s",
                         (b"\x00" * 32, sensor["id"]))
        assert _send(client, sensor["id"], sensor["ingest_token"]) == 200  # still cached
        time.sleep(1.1)
        assert _send(client, sensor["id"], sensor["ingest_token"]) == 401
