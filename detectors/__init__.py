"""Per-machine anomaly detectors over audio-embedding windows.

Pure ML: no database, settings, environment variables or logging configuration. The
service uses :mod:`detectors.registry` to list, validate and build detectors and
:mod:`detectors.artifact` to persist fitted ones.
"""

from .base import BaseDetector
from .errors import (
    ArtifactError,
    DetectorError,
    InsufficientDataError,
    InvalidParamsError,
    UnknownAlgorithmError,
)
from .params import DEFAULT_THRESHOLD_METHOD, DEFAULT_THRESHOLD_Q, validate_threshold
from .registry import ALGORITHMS, build, get_algorithm, list_algorithms, validate_params

__all__ = [
    "ALGORITHMS",
    "DEFAULT_THRESHOLD_METHOD",
    "DEFAULT_THRESHOLD_Q",
    "ArtifactError",
    "BaseDetector",
    "DetectorError",
    "InsufficientDataError",
    "InvalidParamsError",
    "UnknownAlgorithmError",
    "build",
    "get_algorithm",
    "list_algorithms",
    "validate_params",
    "validate_threshold",
]
