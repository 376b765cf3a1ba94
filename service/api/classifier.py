"""`/v1/classifiers` (the algorithm catalogue) and `/v1/machines/{id}/classifier` (the
machine's classifier configuration: a `model_configs` row with target 'classifier', so
training jobs, versions, activation and cron retraining are the detector's)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import ModuleType
from typing import Any
from uuid import UUID

import psycopg
from fastapi import APIRouter

from service.deps import AdminDep, ConnDep, ReaderDep, require_machine
from service.errors import NotFoundError, UnprocessableError
from service.queries import labels, model_configs, training_data
from service.schemas.classification import (
    ClassifierCatalogue,
    ClassifierConfigIn,
    ClassifierConfigOut,
)
from service.schemas.detectors import parse_cron

router = APIRouter(tags=["classifiers"])
TARGET = "classifier"


def _classifiers() -> ModuleType:
    # Imported on first use: scikit-learn takes a while to import (see service.app).
    from detectors import classifiers

    return classifiers


def config_out(row: dict[str, Any]) -> ClassifierConfigOut:
    next_at = None
    if row["retrain_cron"]:
        next_at = parse_cron(row["retrain_cron"]).get_next_fire_time(None, datetime.now(UTC))
    return ClassifierConfigOut(
        machine_id=row["machine_id"], target=row["target"], algorithm=row["algorithm"],
        params=_classifiers().validate_params(row["algorithm"], row["params"]),
        retrain_cron=row["retrain_cron"], training_window=row["training_window_s"],
        activation=row["activation"], updated_at=row["updated_at"], next_retrain_at=next_at)


def require_stored_audio(conn: psycopg.Connection, machine_id: UUID, algorithm: str) -> None:
    """422 naming the label ranges without stored audio, for a classifier that listens
    to the audio itself (`cnn`); nothing for the embedding classifiers."""
    from service.training import classifier_audio

    if not classifier_audio.needs_audio(algorithm):
        return
    sensors = [s.id for s in training_data.machine_sensors(conn, machine_id)]
    try:
        classifier_audio.require_audio(conn, machine_id, algorithm, sensors,
                                       labels.machine_labels(conn, machine_id))
    except classifier_audio.MissingAudioError as exc:
        raise UnprocessableError(str(exc)) from None


def require_fleet_embedding(conn: psycopg.Connection, params: dict[str, Any]) -> None:
    """A `cnn` transferring from the fleet embedding needs a trained version (422)."""
    from service.training import transfer

    try:
        transfer.require_fleet_embedding(conn, params)
    except transfer.NoFleetEmbeddingError as exc:
        raise UnprocessableError(str(exc)) from None


@router.get("/classifiers", response_model=ClassifierCatalogue)
def list_classifiers(_: ReaderDep) -> ClassifierCatalogue:
    return ClassifierCatalogue(algorithms=_classifiers().list_algorithms())


@router.put("/machines/{machine_id}/classifier", response_model=ClassifierConfigOut)
def put_classifier(machine_id: UUID, body: ClassifierConfigIn, conn: ConnDep,
                   _: AdminDep) -> ClassifierConfigOut:
    # UnknownAlgorithmError / InvalidParamsError: 422 listing the valid names.
    params = _classifiers().validate_params(body.algorithm, body.params)
    with conn.transaction():
        require_machine(conn, machine_id)
        require_stored_audio(conn, machine_id, body.algorithm)
        require_fleet_embedding(conn, params)
        row = model_configs.upsert_config(
            conn, machine_id, TARGET, algorithm=body.algorithm, params=params, threshold={},
            retrain_cron=body.retrain_cron, training_window_s=body.training_window,
            activation=body.activation, backfill_s=0.0)
        model_configs.notify_scheduler(conn, f"config:{machine_id}")
    return config_out(row)


@router.get("/machines/{machine_id}/classifier", response_model=ClassifierConfigOut)
def get_classifier(machine_id: UUID, conn: ConnDep, _: ReaderDep) -> ClassifierConfigOut:
    row = model_configs.get_config(conn, machine_id, TARGET)
    if row is None:
        require_machine(conn, machine_id)
        raise NotFoundError(f"machine {machine_id} has no classifier configured; "
                            f"PUT /v1/machines/{machine_id}/classifier")
    return config_out(row)
