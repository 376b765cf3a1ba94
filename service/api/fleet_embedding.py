"""`/v1/fleet/embedding`: the learned fleet embedding's training runs and versions, and each
version's ONNX export for sensors that embed on the device (docs/fleet_embedding.md)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Path, Response, status

from service import security
from service.deps import AdminDep, ConnDep, PrincipalDep, ReaderDep
from service.errors import ConflictError, NotFoundError, UnprocessableError
from service.queries import fleet_embeddings as q
from service.schemas.common import Limit, Offset
from service.schemas.fleet_embedding import FleetEmbeddingList, FleetEmbeddingOut, FleetParams

router = APIRouter(prefix="/fleet/embedding", tags=["fleet embedding"])
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]
ONNX_TYPE = "application/octet-stream"


def any_token(principal: PrincipalDep) -> security.Principal:
    """Any valid token: API keys, and sensors' ingest tokens (a sensor downloads the model
    it embeds with)."""
    return principal


@router.post("/train", status_code=status.HTTP_202_ACCEPTED, response_model=FleetEmbeddingOut)
def post_train(conn: ConnDep, _: AdminDep,
               body: Annotated[FleetParams | None, Body()] = None) -> FleetEmbeddingOut:
    """Queue a training run on every machine's stored audio (a worker runs it)."""
    params = (body or FleetParams()).model_dump(exclude_unset=True)
    with conn.transaction():
        if not q.holds_audio(conn):
            raise UnprocessableError(
                "the fleet embedding learns from stored audio and the audio store holds "
                "none: upload audio first (POST /v1/sensors/{id}/audio with the sensor's "
                "audio policy 'keep')")
        row = q.insert(conn, "api", params)
        if row is None:
            running = q.open_run(conn)
            raise ConflictError(f"fleet embedding run {running['id'] if running else '?'} "
                                "is already queued or running; wait for it to finish")
    return FleetEmbeddingOut.of(row)


@router.get("", response_model=FleetEmbeddingList)
def list_runs(conn: ConnDep, _: ReaderDep, limit: Limit = 100,
              offset: Offset = 0) -> FleetEmbeddingList:
    rows = q.list_runs(conn, limit + 1, offset)
    more = len(rows) > limit
    return FleetEmbeddingList(items=[FleetEmbeddingOut.of(r) for r in rows[:limit]],
                              latest_version=q.latest_version(conn), limit=limit,
                              offset=offset, next_offset=offset + limit if more else None)


@router.get("/runs/{run_id}", response_model=FleetEmbeddingOut)
def get_run(run_id: UUID, conn: ConnDep, _: ReaderDep) -> FleetEmbeddingOut:
    row = q.get_run(conn, run_id)
    if row is None:
        raise NotFoundError(f"fleet embedding run {run_id} does not exist")
    return FleetEmbeddingOut.of(row)


@router.get("/{version}.onnx", response_class=Response,
            responses={200: {"content": {ONNX_TYPE: {}}}})
def get_onnx(version: Version, conn: ConnDep,
             _: Annotated[security.Principal, Depends(any_token)]) -> Response:
    """The ONNX model of `fleet-v<version>`: input `audio` (batch, 16000) mono 16 kHz
    float32, output `embedding` (batch, 64); its SHA-256 in `Earshot-Sha256`."""
    found = q.onnx(conn, version)
    if found is None:
        raise NotFoundError(f"fleet embedding version {version} does not exist")
    blob, digest = found
    return Response(blob, media_type=ONNX_TYPE, headers={"Earshot-Sha256": digest})


@router.get("/{version}", response_model=FleetEmbeddingOut)
def get_version(version: Version, conn: ConnDep, _: ReaderDep) -> FleetEmbeddingOut:
    row = q.get_version(conn, version)
    if row is None:
        raise NotFoundError(f"fleet embedding version {version} does not exist")
    return FleetEmbeddingOut.of(row)
