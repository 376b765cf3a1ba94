"""The `/v1` API, one router module per resource."""

from __future__ import annotations

from fastapi import APIRouter

from service.api import (
    alerts,
    api_keys,
    audio,
    baselines,
    classifier,
    conditions,
    detectors,
    event_rules,
    fleet,
    fleet_embedding,
    health,
    ingest,
    label_tracks,
    labels,
    machines,
    models,
    predictions,
    reembed,
    scores,
    sensors,
    silences,
    spectrogram,
    training,
    webhooks,
)

v1 = APIRouter(prefix="/v1")
v1.include_router(api_keys.router)
v1.include_router(machines.router)
v1.include_router(sensors.router)
v1.include_router(ingest.router)
v1.include_router(audio.router)
v1.include_router(spectrogram.router)
v1.include_router(reembed.router)
v1.include_router(scores.router)
v1.include_router(fleet.router)
v1.include_router(fleet_embedding.router)
v1.include_router(alerts.router)
v1.include_router(silences.router)
v1.include_router(webhooks.router)
v1.include_router(detectors.router)
v1.include_router(baselines.router)
v1.include_router(conditions.router)
v1.include_router(training.router)
v1.include_router(models.router)
v1.include_router(labels.router)
v1.include_router(label_tracks.router)
v1.include_router(classifier.router)
v1.include_router(predictions.router)
v1.include_router(event_rules.router)

__all__ = ["health", "v1"]
