"""The `cnn` classifier's transfer options (issue 14) from the learned fleet embedding
(issue 15, docs/fleet_embedding.md): one mechanism for both. `transfer: "linear"` fits a
logistic regression on the newest fleet embedding version's 64-d embedding of each
labelled window's audio; `"fine_tune"` trains the CNN from that version's weights.
Which version was used is stored in the model's metrics (`transfer`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg

from service.fleet import kinds
from service.queries import fleet_embeddings
from service.training.errors import TrainingError

FLEET_WIDTH = 16  # detectors.fleet_embedding.FLEET_WIDTH, without importing torch here


class NoFleetEmbeddingError(TrainingError):
    """Transfer was asked for and no fleet embedding version exists."""


def mode(params: Mapping[str, Any]) -> str:
    return str(params.get("transfer", "none"))


def require_fleet_embedding(conn: psycopg.Connection, params: Mapping[str, Any]) -> int | None:
    """The version a transfer would start from (None: no transfer asked for), or
    NoFleetEmbeddingError saying what is missing."""
    if mode(params) == "none":
        return None
    if mode(params) == "fine_tune" and params.get("width", FLEET_WIDTH) != FLEET_WIDTH:
        raise NoFleetEmbeddingError(
            f"transfer 'fine_tune' starts the cnn from the fleet embedding's weights, whose "
            f"width is {FLEET_WIDTH}: set width {FLEET_WIDTH} (or transfer 'linear')")
    version = fleet_embeddings.latest_version(conn)
    if version is None:
        stored = fleet_embeddings.holds_audio(conn)
        raise NoFleetEmbeddingError(
            f"transfer {mode(params)!r} starts from the learned fleet embedding, and none "
            "has been trained yet: " + (
                "train one with POST /v1/fleet/embedding/train (it learns from the audio "
                "store), or use transfer 'none'" if stored else
                "it learns from stored audio and the audio store holds none; upload audio "
                "(POST /v1/sensors/{id}/audio), POST /v1/fleet/embedding/train, or use "
                "transfer 'none'"))
    return version


def pretrained_for(conn: psycopg.Connection, params: Mapping[str, Any]) -> Any:
    """The newest version as the classifier's `pretrained`, or None without transfer."""
    version = require_fleet_embedding(conn, params)
    if version is None:
        return None
    from detectors.fleet_embedding import FleetPretrained

    return FleetPretrained(kinds.embedder(conn, version), version)


def summary(params: Mapping[str, Any], pretrained: Any) -> dict[str, Any]:
    return {"mode": mode(params),
            "fleet_embedding_version": getattr(pretrained, "version", None)}
