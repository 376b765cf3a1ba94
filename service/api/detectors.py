"""`/v1/detectors` (the algorithm catalogue) and `/v1/machines/{id}/detector` (the
machine's detector configuration)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import ModuleType
from typing import Any
from uuid import UUID

from fastapi import APIRouter

from service.deps import AdminDep, ConnDep, ReaderDep, require_machine
from service.errors import NotFoundError
from service.queries import model_configs
from service.schemas.detectors import (
    AlgorithmCatalogue,
    DetectorConfigIn,
    DetectorConfigOut,
    parse_cron,
)

router = APIRouter(tags=["detectors"])
TARGET = "detector"


def _registry() -> ModuleType:
    # Imported on first use (and warmed in the background at startup, see service.app):
    # the registry pulls in torch, scikit-learn and PyOD, seconds of import time.
    from detectors import registry

    return registry


def config_out(row: dict[str, Any]) -> DetectorConfigOut:
    next_at = None
    if row["retrain_cron"]:
        next_at = parse_cron(row["retrain_cron"]).get_next_fire_time(None, datetime.now(UTC))
    return DetectorConfigOut(
        machine_id=row["machine_id"], target=row["target"], algorithm=row["algorithm"],
        params=_registry().validate_params(row["algorithm"], row["params"]),
        threshold=_registry().validate_threshold(row["threshold"]),
        retrain_cron=row["retrain_cron"], training_window=row["training_window_s"],
        activation=row["activation"], backfill=row["backfill_s"],
        updated_at=row["updated_at"], next_retrain_at=next_at)


@router.get("/detectors", response_model=AlgorithmCatalogue)
def list_detectors(_: ReaderDep) -> AlgorithmCatalogue:
    return AlgorithmCatalogue(algorithms=_registry().list_algorithms(),
                              threshold=_registry().threshold_schema())


@router.put("/machines/{machine_id}/detector", response_model=DetectorConfigOut)
def put_detector(machine_id: UUID, body: DetectorConfigIn, conn: ConnDep,
                 _: AdminDep) -> DetectorConfigOut:
    # Raises UnknownAlgorithmError / InvalidParamsError: 422 listing the valid names.
    params = _registry().validate_params(body.algorithm, body.params)
    threshold = _registry().validate_threshold(body.threshold)
    with conn.transaction():
        require_machine(conn, machine_id)
        row = model_configs.upsert_config(
            conn, machine_id, TARGET, algorithm=body.algorithm, params=params,
            threshold=threshold, retrain_cron=body.retrain_cron,
            training_window_s=body.training_window, activation=body.activation,
            backfill_s=body.backfill)
        model_configs.notify_scheduler(conn, f"config:{machine_id}")
    return config_out(row)


@router.get("/machines/{machine_id}/detector", response_model=DetectorConfigOut)
def get_detector(machine_id: UUID, conn: ConnDep, _: ReaderDep) -> DetectorConfigOut:
    row = model_configs.get_config(conn, machine_id, TARGET)
    if row is None:
        require_machine(conn, machine_id)
        raise NotFoundError(f"machine {machine_id} has no detector configured; "
                            f"PUT /v1/machines/{machine_id}/detector")
    return config_out(row)
