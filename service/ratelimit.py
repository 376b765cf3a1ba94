"""Per-token request rate limit (token bucket), in process memory.

Each API process keeps its own buckets: with N API processes the effective limit is N
times the setting. Keyed by the token's digest so the limit also holds for unknown tokens
(a client hammering with a garbage token is slowed down before any database lookup)."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

MAX_TRACKED = 100_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self._buckets: dict[bytes, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: bytes) -> float:
        """Take one token; returns 0 when allowed, else the seconds until one is free."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_TRACKED:
                    self._buckets.clear()
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


def retry_after_header(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))
