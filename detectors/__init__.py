"""Per-machine anomaly detectors over audio-embedding windows.

Pure ML: no database, settings, environment variables or logging configuration. The
service uses :mod:`detectors.registry` to list, validate and build detectors and
:mod:`detectors.artifact` to persist fitted ones.

Names are resolved lazily (PEP 562): importing `detectors.errors` must not pull in torch,
scikit-learn and PyOD, or every API process would spend seconds starting up.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BaseDetector": "base",
    "ArtifactError": "errors",
    "DetectorError": "errors",
    "InsufficientDataError": "errors",
    "InvalidParamsError": "errors",
    "UnknownAlgorithmError": "errors",
    "DEFAULT_THRESHOLD_METHOD": "params",
    "DEFAULT_THRESHOLD_Q": "params",
    "validate_threshold": "params",
    "ALGORITHMS": "registry",
    "build": "registry",
    "get_algorithm": "registry",
    "list_algorithms": "registry",
    "validate_params": "registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'detectors' has no attribute {name!r}")
    return getattr(importlib.import_module(f"detectors.{module}"), name)
