"""The token bucket counted in tokens, not wall time: its clock is a test-controlled value,
so a slow or preempted test run cannot refill a bucket between two requests."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from service import ratelimit
from service.app import create_app
from service.ratelimit import RateLimiter
from service.settings import Settings
from tests.conftest import ADMIN_KEY


class Clock:
    """Stands in for `time` in service.ratelimit: `monotonic()` moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def test_bucket_allows_burst_then_reports_wait(clock: Clock) -> None:
    # Steps of 1/8 s at 4 tokens/s: exact in binary, so waits compare exactly.
    limiter = RateLimiter(rate_per_s=4, burst=3)
    assert [limiter.acquire(b"k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire(b"k") == 0.25  # one token at 4/s
    clock.now += 0.125
    assert limiter.acquire(b"k") == 0.125  # half refilled, none taken
    assert limiter.acquire(b"other") == 0.0  # buckets are per key
    clock.now += 0.125
    assert limiter.acquire(b"k") == 0.0  # the token the wait promised
    assert limiter.acquire(b"k") == 0.25
    clock.now += 60
    assert [limiter.acquire(b"k") for _ in range(4)] == [0.0, 0.0, 0.0, 0.25]  # burst cap


def test_api_answers_429_with_retry_after_past_the_burst(settings: Settings,
                                                         clock: Clock) -> None:
    limited = settings.model_copy(update={"rate_limit_per_s": 0.5, "rate_limit_burst": 3})
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        codes = [client.get("/v1/api-keys", headers=headers).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        response = client.get("/v1/api-keys", headers=headers)
        assert response.status_code == 429
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "2"  # one token at 0.5/s
        other = client.get("/v1/api-keys", headers={"Authorization": "Bearer someone-else"})
        assert other.status_code == 401
        clock.now += 2.0
        assert client.get("/v1/api-keys", headers=headers).status_code == 200
