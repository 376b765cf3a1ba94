"""`POST /v1/machines/{id}/train` queues a training job (the scheduler process runs it;
nothing trains inside a request) and `/v1/jobs/{id}` reports on it."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from service.api.classifier import require_stored_audio
from service.deps import AdminDep, ConnDep, ReaderDep, require_machine
from service.errors import ConflictError, NotFoundError, UnprocessableError
from service.queries import jobs, model_configs
from service.schemas.common import Limit, Offset
from service.schemas.training import JobAccepted, JobList, JobOut, TrainIn
from service.training.defaults import recommended_detector
from service.training.targets import DEFAULT_TARGET, TRAINERS

router = APIRouter(tags=["training"])


@router.post("/machines/{machine_id}/train", status_code=status.HTTP_202_ACCEPTED,
             response_model=JobAccepted)
def train(machine_id: UUID, conn: ConnDep, _: AdminDep, response: Response,
          body: TrainIn | None = None) -> JobAccepted:
    target = body.target if body is not None else DEFAULT_TARGET
    if target not in TRAINERS:
        raise UnprocessableError(f"unknown training target {target!r}; valid targets: "
                                 f"{', '.join(sorted(TRAINERS))}", valid=sorted(TRAINERS))
    with conn.transaction():
        require_machine(conn, machine_id)
        config = model_configs.get_config(conn, machine_id, target)
        if config is None:
            if target != DEFAULT_TARGET:
                raise ConflictError(f"machine {machine_id} has no {target} configured; "
                                    f"PUT /v1/machines/{machine_id}/{target} first")
            recommended_detector(conn, machine_id)
        elif target == "classifier":  # a cnn without the labelled ranges' audio: say so
            require_stored_audio(conn, machine_id, config["algorithm"])
        # A manual job still waiting already covers this request: do not pile up reruns.
        job = jobs.queued_manual(conn, machine_id, target) or \
            jobs.insert_manual(conn, machine_id, target)
        model_configs.notify_scheduler(conn, f"job:{job['id']}")
    response.headers["Location"] = f"/v1/jobs/{job['id']}"
    return JobAccepted(job_id=job["id"], state=job["state"],
                       links={"job": f"/v1/jobs/{job['id']}"})


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: UUID, conn: ConnDep, _: ReaderDep) -> JobOut:
    row = jobs.get_job(conn, job_id)
    if row is None:
        raise NotFoundError(f"job {job_id} does not exist")
    return JobOut(**row)


@router.get("/machines/{machine_id}/jobs", response_model=JobList)
def list_jobs(machine_id: UUID, conn: ConnDep, _: ReaderDep, limit: Limit = 100,
              offset: Offset = 0) -> JobList:
    require_machine(conn, machine_id)
    rows = jobs.list_machine_jobs(conn, machine_id, limit + 1, offset)
    more = len(rows) > limit
    return JobList(items=[JobOut(**r) for r in rows[:limit]], limit=limit, offset=offset,
                   next_offset=offset + limit if more else None)
