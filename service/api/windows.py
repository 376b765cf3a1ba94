"""Query parameters shared by the per-window read endpoints (scores, predictions): the
time range with its defaults, and the opaque keyset cursor over (t, sensor_id, version)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

from fastapi import Query
from pydantic import AwareDatetime

from service.errors import UnprocessableError

Start = Annotated[AwareDatetime | None, Query(description="RFC 3339; default: end - 24 h")]
End = Annotated[AwareDatetime | None, Query(description="RFC 3339, exclusive; default: now")]
DEFAULT_SPAN = timedelta(hours=24)


def time_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    start = start or end - DEFAULT_SPAN
    if end <= start:
        raise UnprocessableError("end must be after start", start=start.isoformat(),
                                 end=end.isoformat())
    return start, end


def encode_cursor(row: dict[str, Any]) -> str:
    key = [row["t"].isoformat(), str(row["sensor_id"]), row["model_version"]]
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        t, sensor_id, version = json.loads(raw)
        after = datetime.fromisoformat(t), UUID(sensor_id), int(version)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise UnprocessableError("cursor is not one this API returned (pass `next_cursor` "
                                 "of the previous page unchanged)") from exc
    if after[0].tzinfo is None:
        raise UnprocessableError("cursor is not one this API returned")
    return after
