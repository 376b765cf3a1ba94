"""`/v1/sensors/{id}/reembed`: recompute a sensor's windows over a time range from its
stored audio (service.reembed runs the job in a worker)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ingest.features import EMBEDDINGS, spec_of
from service.api.machines import Confirm, refuse_data_loss
from service.deps import AdminDep, ConnDep, ReaderDep
from service.errors import ConflictError, NotFoundError, UnprocessableError
from service.fleet import kinds
from service.queries import reembed
from service.queries import sensors as sensor_queries

router = APIRouter(prefix="/sensors", tags=["audio"])


class ReembedIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: AwareDatetime
    end: AwareDatetime
    kind: str | None = Field(None, description="a built-in embedding kind or fleet-v<N>; "
                                               "default: the sensor's own")

    @model_validator(mode="after")
    def _valid(self) -> ReembedIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if self.kind is not None and spec_of(self.kind) is None:
            raise ValueError(f"kind {self.kind!r} is not built-in; re-embedding computes "
                             f"from audio: one of {', '.join(EMBEDDINGS)} or fleet-v<N>")
        return self


class ReembedOut(BaseModel):
    id: UUID
    sensor_id: UUID
    kind: str
    start_at: datetime
    end_at: datetime
    state: str
    done_until: datetime | None
    windows: int = Field(description="windows recomputed so far")
    error: str | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _switch_kind(conn: ConnDep, sensor: dict[str, Any], kind: str,
                 confirm: str | None) -> None:
    """A new kind of another dimension cannot share the sensor with its old windows: they
    are deleted (with ?confirm=delete-data) and only the range is recomputed."""
    spec = spec_of(kind)
    assert spec is not None  # checked by the caller
    if spec.dim != sensor["dim"]:
        if confirm is None:
            refuse_data_loss(f"sensor {sensor['id']}",
                             sensor_queries.count_data(conn, [sensor["id"]]))
        reembed.delete_all_windows(conn, sensor["id"])
    reembed.switch_kind(conn, sensor["id"], kind, spec.dim, spec.window_s)


@router.post("/{sensor_id}/reembed", status_code=status.HTTP_202_ACCEPTED,
             response_model=ReembedOut)
def post_reembed(sensor_id: UUID, body: ReembedIn, conn: ConnDep, _: AdminDep,
                 confirm: Confirm = None) -> ReembedOut:
    """Queue the job. With another `kind` the sensor switches to it at once (new windows,
    from audio or sent, are of that kind); retrain the machine afterwards."""
    with conn.transaction():
        if not sensor_queries.lock_for_delete(conn, sensor_id):
            raise NotFoundError(f"sensor {sensor_id} does not exist")
        sensor = sensor_queries.get(conn, sensor_id)
        assert sensor is not None
        kind = body.kind or sensor["embedding_kind"]
        if spec_of(kind) is None:
            raise UnprocessableError(f"the sensor's kind {kind!r} is not built-in: name a "
                                     f"built-in kind ({', '.join(EMBEDDINGS)}) or fleet-v<N>")
        kinds.require_version(conn, kind)
        if kind != sensor["embedding_kind"]:
            _switch_kind(conn, sensor, kind, confirm)
        row = reembed.insert(conn, sensor_id, kind, body.start, body.end)
        if row is None:
            raise ConflictError(f"sensor {sensor_id} already has a re-embedding queued or "
                                "running; wait for it to finish")
    return ReembedOut(**row)


@router.get("/{sensor_id}/reembed/{job_id}", response_model=ReembedOut)
def get_reembed(sensor_id: UUID, job_id: UUID, conn: ConnDep, _: ReaderDep) -> ReembedOut:
    row = reembed.get(conn, sensor_id, job_id)
    if row is None:
        raise NotFoundError(f"sensor {sensor_id} has no re-embedding job {job_id}")
    return ReembedOut(**row)
