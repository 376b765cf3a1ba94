"""Credentials: API keys (`esk_…`), sensor ingest tokens (`est_…`) and the bootstrap admin
key. Only SHA-256 digests are stored; tokens are 256-bit random, so a fast hash is enough
and lookups stay a single indexed equality."""

from __future__ import annotations

import hashlib
import hmac
import secrets
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
