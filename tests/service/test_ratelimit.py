from __future__ import annotations

from fastapi.testclient import TestClient

from service.app import create_app
from service.ratelimit import RateLimiter
from service.settings import Settings
from tests.conftest import ADMIN_KEY


def test_bucket_allows_burst_then_reports_wait() -> None:
    limiter = RateLimiter(rate_per_s=10, burst=3)
    assert [limiter.acquire(b"k") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire(b"k")
    assert 0.0 < wait <= 0.1 + 1e-9
    assert limiter.acquire(b"other") == 0.0


def test_api_answers_429_with_retry_after_past_the_burst(settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_limit_per_s": 0.5, "rate_limit_burst": 3})
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        codes = [client.get("/v1/api-keys", headers=headers).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        response = client.get("/v1/api-keys", headers=headers)
        assert response.status_code == 429
        assert response.headers["content-type"] == "application/problem+json"
        assert int(response.headers["retry-after"]) >= 1
        other = client.get("/v1/api-keys", headers={"Authorization": "Bearer someone-else"})
        assert other.status_code == 401
