"""Credentials: API keys (`esk_…`), sensor ingest tokens (`est_…`) and the bootstrap admin
key. Only SHA-256 digests are stored; tokens are 256-bit random, so a fast hash is enough
and lookups stay a single indexed equality."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

API_KEY_PREFIX = "esk_"
INGEST_TOKEN_PREFIX = "est_"
Role = Literal["admin", "read", "sensor"]


@dataclass(frozen=True)
class Principal:
    role: Role
    key_id: UUID | None = None
    sensor_id: UUID | None = None

    @property
    def can_read(self) -> bool:
        return self.role in ("admin", "read")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def same_secret(presented: str, expected: str) -> bool:
    """Constant-time comparison of two secrets of any length."""
    return hmac.compare_digest(digest(presented), digest(expected))


def display_prefix(token: str) -> str:
    """Enough of a key to recognise it in a listing, never enough to use it."""
    return token[:8] + "…"


class PrincipalCache:
    """Principals of recently seen tokens, by digest, for `ttl_s` seconds (in process memory).

    The revocation bound: a token rotated, revoked or deleted through another API process
    still works here for at most `ttl_s`; through this process it stops at once
    (`forget_all`). Only found tokens are kept: an unknown token is looked up every time
    (the rate limit slows that down), so a new sensor's token works at once."""

    def __init__(self, ttl_s: float, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self._max, self._clock = ttl_s, max_entries, clock
        self._entries: dict[bytes, tuple[Principal, float]] = {}
        _CACHES.add(self)

    def get(self, token_digest: bytes) -> Principal | None:
        hit = self._entries.get(token_digest)
        if hit is None or hit[1] <= self._clock():
            return None
        return hit[0]

    def put(self, token_digest: bytes, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()  # rare (a huge fleet): start over rather than track age
        self._entries[token_digest] = (principal, self._clock() + self.ttl_s)

    def clear(self) -> None:
        self._entries.clear()


_CACHES: weakref.WeakSet[PrincipalCache] = weakref.WeakSet()


def forget_all() -> None:
    """Drop every cached principal of this process: call after a token is rotated, a key
    revoked or a sensor deleted, so the change holds here at once."""
    for cache in list(_CACHES):
        cache.clear()
