"""Sensor data in: `/ingest-errors` (the sensor's dead letters) and the helpers the write
routes share: `/embeddings` (service.api.embeddings, the hot path) and audio
(service.api.audio).

The write routes are `async` only to read the body, counting bytes as they arrive; parsing,
decoding and database work run in worker threads. No pooled connection is held while a
slow client uploads. The answer is sent only after the windows are committed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Request
from psycopg_pool import ConnectionPool

from ingest import codec
from ingest.errors import PayloadTooLargeError, UnsupportedMediaTypeError
from service.deps import ConnDep, PoolDep, ReaderDep, SettingsDep, get_principal
from service.errors import BadRequestError, ForbiddenError, NotFoundError
from service.queries import ingest_errors
from service.queries import sensors as sensor_queries
from service.queries.sensors import IngestTarget
from service.schemas.common import Limit, Offset
from service.schemas.ingest import (
    IngestErrorList,
    IngestErrorOut,
)
from service.security import Principal

router = APIRouter(prefix="/sensors", tags=["ingest"])
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_BATCH_BODY = {"requestBody": {"required": True, "content": {
    codec.JSON_TYPE: {"schema": {"type": "object", "required": ["windows"], "properties": {
        "windows": {"type": "array", "items": {"type": "object", "required": ["t", "v"],
                    "properties": {"t": {"type": "string", "format": "date-time"},
                                   "v": {"type": "array", "items": {"type": "number"}}}}}}}},
    codec.NDJSON_TYPE: {"schema": {"type": "string"}},
    codec.BINARY_TYPE: {"schema": {"type": "string", "format": "binary"}}}}}


def ingest_principal(request: Request, pool: PoolDep, settings: SettingsDep,
                     authorization: Annotated[str | None, Header()] = None) -> Principal:
    """The caller, looked up on a connection returned to the pool at once: an upload can
    take a long time, and must not hold a pooled connection while its body arrives."""
    with pool.connection() as conn:
        return get_principal(request, conn, settings, authorization)


IngestPrincipalDep = Annotated[Principal, Depends(ingest_principal)]


def ingest_writer(sensor_id: UUID, principal: IngestPrincipalDep) -> Principal:
    """The caller, if it may write this sensor's data. A dependency, so a caller without
    the right gets 403 before anything about its request (query, body) is looked at."""
    if principal.is_admin or principal.sensor_id == sensor_id:
        return principal
    if principal.role == "sensor":
        raise ForbiddenError("this ingest token belongs to another sensor")
    raise ForbiddenError("writing sensor data needs the sensor's ingest token or an admin key")


WriterDep = Annotated[Principal, Depends(ingest_writer)]


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def _require_media_type(request: Request, accepted: tuple[str, ...]) -> str:
    media = _media_type(request)
    if media not in accepted:
        got = repr(media) if media else "no Content-Type"
        raise UnsupportedMediaTypeError(f"{got} is not accepted here; send one of: "
                                        f"{', '.join(accepted)}")
    return media


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) as soon as it is known to exceed `limit` bytes: from
    Content-Length before reading anything, else while the chunks arrive."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadRequestError(f"Content-Length {declared[:32]!r} is not a byte count")
        if int(declared) > limit:
            raise _too_large(f"Content-Length is {int(declared):,} bytes", limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(f"the body exceeds {limit:,} bytes", limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(what: str, limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"{what}; at most {limit:,} bytes are accepted per request "
                                "(split the batch)")


def _target(pool: ConnectionPool, sensor_id: UUID) -> IngestTarget:
    with pool.connection() as conn:
        target = sensor_queries.ingest_target(conn, sensor_id)
    if target is None:
        raise NotFoundError(f"sensor {sensor_id} does not exist")
    return target


@router.get("/{sensor_id}/ingest-errors", response_model=IngestErrorList)
def list_ingest_errors(sensor_id: UUID, conn: ConnDep, _: ReaderDep, limit: Limit = 100,
                       offset: Offset = 0) -> IngestErrorList:
    """Rejected messages of ingest paths that cannot answer the sender, newest first."""
    if sensor_queries.get(conn, sensor_id) is None:
        raise NotFoundError(f"sensor {sensor_id} does not exist")
    rows = ingest_errors.list_for_sensor(conn, sensor_id, limit + 1, offset)
    more = len(rows) > limit
    return IngestErrorList(items=[IngestErrorOut(**r) for r in rows[:limit]], limit=limit,
                           offset=offset, next_offset=offset + limit if more else None)
