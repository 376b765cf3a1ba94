"""Name -> detector class registry, parameter validation and construction.

This is the service's entry point: ``list_algorithms`` backs ``GET /v1/detectors``,
``validate_params`` / ``validate_threshold`` check a training request, and ``build``
turns a validated request into an unfitted detector.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .autoencoder import AutoencoderDetector
from .base import BaseDetector
from .domain import DomainNearestDetector
from .domain_gaussian import DomainMahalanobisDetector
from .ecod import ECODDetector
from .errors import UnknownAlgorithmError
from .gaussian import GMMDetector, MahalanobisDetector
from .params import THRESHOLD_SPECS, ParamValue, validate, validate_threshold
from .pyod_models import IForestDetector, KNNDetector, PCADetector

ALGORITHMS: dict[str, type[BaseDetector]] = {
    cls.name: cls
    for cls in (
        IForestDetector,
        GMMDetector,
        KNNDetector,
        PCADetector,
        ECODDetector,
        MahalanobisDetector,
        AutoencoderDetector,
        DomainNearestDetector,
        DomainMahalanobisDetector,
    )
}

# What a machine without a chosen detector trains: the detector that held best over all of
# BENCHMARKS.md's robustness section (mean AUC over as-recorded, loudness-normalised and
# three noise levels 0.768 against domain_nn's 0.752 and domain_mahalanobis's 0.737;
# DCASE 2023 source/target 0.621 against 0.502 and 0.500; BLDC speed shift 0.963 against
# 0.957 and 1.00). The domain detectors win at -6 dB SNR and (domain_mahalanobis) on the
# speed shift: choose them for loud plants and machines with declared conditions.
RECOMMENDED = "ecod"

__all__ = [
    "ALGORITHMS",
    "RECOMMENDED",
    "build",
    "get_algorithm",
    "list_algorithms",
    "threshold_schema",
    "validate_params",
    "validate_threshold",
]


def get_algorithm(name: str) -> type[BaseDetector]:
    """The detector class registered as ``name``; raises UnknownAlgorithmError."""
    try:
        return ALGORITHMS[name]
    except (KeyError, TypeError):
        raise UnknownAlgorithmError(name, ALGORITHMS) from None


def list_algorithms() -> list[dict[str, Any]]:
    """JSON-serialisable description of every algorithm and its parameters."""
    return [
        {
            "name": name,
            "recommended": name == RECOMMENDED,
            "description": cls.description,
            "params": [spec.to_dict() for spec in cls.algorithm_specs()],
        }
        for name, cls in ALGORITHMS.items()
    ]


def threshold_schema() -> list[dict[str, Any]]:
    """JSON-serialisable description of the threshold config (``method``, ``q``)."""
    return [spec.to_dict() for spec in THRESHOLD_SPECS]


def validate_params(name: str, params: Mapping[str, object] | None) -> dict[str, ParamValue]:
    """Validate ``params`` for algorithm ``name`` and return them with defaults filled.

    Raises UnknownAlgorithmError or InvalidParamsError (listing every problem and the
    valid parameter names). Threshold settings are not algorithm parameters: pass them
    to :func:`validate_threshold` / :func:`build`.
    """
    return validate(get_algorithm(name).algorithm_specs(), params, name)


def build(
    name: str,
    params: Mapping[str, object] | None = None,
    threshold: Mapping[str, object] | None = None,
) -> BaseDetector:
    """An unfitted detector from a (validated here) algorithm name, params and threshold."""
    cls = get_algorithm(name)
    checked = validate_params(name, params)
    limits = validate_threshold(threshold)
    return cls(**checked, threshold_method=limits["method"], threshold_q=limits["q"])
