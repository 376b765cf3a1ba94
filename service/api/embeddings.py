"""`POST /v1/sensors/{id}/embeddings`: one request = one batch, the ingest hot path.

The caller is authenticated (and its right to this sensor checked) before the body is
read, from the in-process principal cache when its token was seen within
`EARSHOT_AUTH_CACHE_S`. The sensor's dimension comes from a cache too: it never changes,
and a sensor deleted meanwhile is caught where the windows are written. The batch is then
validated and handed to the process's group commit (`ingest.group_commit`), which answers
after the transaction holding it has committed. Nothing here holds a pooled connection
while a body arrives, and no work is hopped to a thread that costs less than the hop: a
small binary body is decoded on the event loop (numpy views, microseconds); JSON, NDJSON
and large binary bodies are parsed in a worker thread.
"""

from __future__ import annotations

import time
from functools import partial
from uuid import UUID

import orjson
from fastapi import APIRouter, Request, Response
from psycopg_pool import ConnectionPool
from starlette.concurrency import run_in_threadpool

from ingest import codec
from ingest import conditions as condition_names
from ingest.errors import BatchValidationError
from ingest.group_commit import GroupCommitter
from ingest.store import ConditionSpan, SensorBatch, UnknownSensorError
from service.api.ingest import _BATCH_BODY, _require_media_type, read_body
from service.deps import cached_principal
from service.errors import ForbiddenError, NotFoundError, UnprocessableError
from service.queries import sensors as sensor_queries
from service.queries.sensors import IngestTarget
from service.schemas.ingest import IngestResult
from service.security import Principal
from service.settings import Settings

router = APIRouter(prefix="/sensors", tags=["ingest"])
INLINE_PARSE_BYTES = 256 * 1024  # binary bodies up to this are decoded on the event loop
TARGET_TTL_S = 60.0
MAX_TARGETS = 100_000


class TargetCache:
    """Sensors' embedding kind and dimension (immutable once created), for `ttl_s`."""

    def __init__(self, ttl_s: float = TARGET_TTL_S) -> None:
        self._ttl_s = ttl_s
        self._entries: dict[UUID, tuple[IngestTarget, float]] = {}

    def get(self, sensor_id: UUID) -> IngestTarget | None:
        hit = self._entries.get(sensor_id)
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def put(self, target: IngestTarget) -> None:
        if len(self._entries) >= MAX_TARGETS:
            self._entries.clear()
        self._entries[target.id] = (target, time.monotonic() + self._ttl_s)

    def forget(self, sensor_id: UUID) -> None:
        self._entries.pop(sensor_id, None)


def _check_writer(principal: Principal, sensor_id: UUID) -> None:
    """403 unless the caller may write this sensor's data."""
    if principal.is_admin or principal.sensor_id == sensor_id:
        return
    if principal.role == "sensor":
        raise ForbiddenError("this ingest token belongs to another sensor")
    raise ForbiddenError("writing sensor data needs the sensor's ingest token or an admin key")


def _sensor_id(request: Request) -> UUID:
    raw = request.path_params["sensor_id"]
    try:
        return UUID(raw)
    except ValueError:
        raise UnprocessableError(f"path.sensor_id: {raw[:64]!r} is not a UUID") from None


def _query_condition(request: Request) -> str | None:
    """``?condition=``, validated; None at once (no parsing) when there is no query."""
    if not request.scope.get("query_string"):
        return None
    values = request.query_params.getlist("condition")
    if not values:
        return None
    if len(values) > 1:
        raise BatchValidationError("condition is given more than once; send one")
    return condition_names.check_condition(values[0], "query.condition")


def _conditions(query: str | None, batch: codec.Batch) -> tuple[ConditionSpan, ...]:
    """The batch's condition span: from ?condition= or the JSON body's "condition"."""
    if query is not None and batch.condition is not None and query != batch.condition:
        raise BatchValidationError(f"?condition={query!r} and the body's condition "
                                   f"{batch.condition!r} disagree; send one")
    name = query if query is not None else batch.condition
    return () if name is None else (ConditionSpan.of(name, batch.times_us),)


def _lookup_target(pool: ConnectionPool, sensor_id: UUID) -> IngestTarget | None:
    with pool.connection() as conn:
        return sensor_queries.ingest_target(conn, sensor_id)


async def _target(request: Request, sensor_id: UUID) -> IngestTarget:
    targets: TargetCache = request.app.state.ingest_targets
    target = targets.get(sensor_id)
    if target is None:
        target = await run_in_threadpool(_lookup_target, request.app.state.pool, sensor_id)
        if target is None:
            raise NotFoundError(f"sensor {sensor_id} does not exist")
        targets.put(target)
    return target


_PARAMETERS = [
    {"name": "sensor_id", "in": "path", "required": True,
     "schema": {"type": "string", "format": "uuid"}},
    {"name": "condition", "in": "query", "required": False,
     "schema": {"type": "string", "pattern": condition_names.CONDITION_PATTERN},
     "description": "the machine's operating condition while every window of the batch was "
                    "recorded (e.g. 1800rpm); also the JSON body's \"condition\""},
    {"name": "authorization", "in": "header", "required": False,
     "schema": {"type": "string"}, "description": "Bearer <the sensor's ingest token or an "
                                                 "admin key>"},
]


@router.post("/{sensor_id}/embeddings", response_model=IngestResult,
             openapi_extra={**_BATCH_BODY, "parameters": _PARAMETERS})
async def post_embeddings(request: Request) -> Response:
    """One batch of windows, stored whole or not at all; idempotent on (sensor, t).

    `?condition=` (or the JSON body's `"condition"`) declares the machine's operating
    condition over the batch's windows, in the same transaction (docs/ingest.md).

    The route declares no parameters to FastAPI: resolving declared parameters and
    dependencies cost more than the rest of a small request (BENCHMARKS.md, ingest), so
    it authenticates, checks the right, the sensor id and the media type itself, in that
    order, before it reads the body.
    """
    settings: Settings = request.app.state.settings
    principal = await cached_principal(request, settings, request.headers.get("authorization"))
    sensor_id = _sensor_id(request)
    _check_writer(principal, sensor_id)
    media = _require_media_type(request, codec.SUPPORTED_CONTENT_TYPES)
    condition = _query_condition(request)
    target = await _target(request, sensor_id)
    body = await read_body(request, settings.max_body_bytes)
    parse = partial(codec.parse_batch, body, media, dim=target.dim, limits=settings.batch_limits(),
                    now_us=codec.now_us())
    inline = media == codec.BINARY_TYPE and len(body) <= INLINE_PARSE_BYTES
    batch = parse() if inline else await run_in_threadpool(parse)
    committer: GroupCommitter = request.app.state.ingest_committer
    try:
        result = await committer.store(SensorBatch(sensor_id, batch.times_us, batch.values,
                                                   _conditions(condition, batch)))
    except UnknownSensorError:
        request.app.state.ingest_targets.forget(sensor_id)
        raise NotFoundError(f"sensor {sensor_id} was deleted during the request") from None
    return Response(orjson.dumps({"accepted": result.accepted,
                                  "duplicates": result.duplicates}),
                    media_type="application/json")
