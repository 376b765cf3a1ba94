"""Exceptions raised by the detectors package.

Every error is a :class:`DetectorError`, so the service can map the whole family to a
client error with one ``except``. Parameter and data errors also subclass ``ValueError``
so they behave like the errors scikit-learn raises for the same mistakes.
"""

from __future__ import annotations

from collections.abc import Iterable


class DetectorError(Exception):
    """Base class for every error raised by :mod:`detectors`."""


class UnknownAlgorithmError(DetectorError):
    """The requested algorithm name is not registered."""

    def __init__(self, name: object, valid: Iterable[str]) -> None:
        self.name = name
        self.valid: list[str] = sorted(valid)
        super().__init__(
            f"unknown detector algorithm {name!r}; valid algorithms: {', '.join(self.valid)}"
        )


class InvalidParamsError(DetectorError, ValueError):
    """One or more parameters are unknown, of the wrong type or out of range."""

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors: list[str] = list(errors)
        super().__init__("invalid detector parameters: " + "; ".join(self.errors))


class InsufficientDataError(DetectorError, ValueError):
    """Too few training windows to fit and calibrate a detector."""

    def __init__(self, given: int, needed: int, reason: str) -> None:
        self.given = given
        self.needed = needed
        super().__init__(f"got {given} training windows, need at least {needed}: {reason}")


class ArtifactError(DetectorError):
    """A stored detector blob is corrupt, tampered with, or of an unsupported format."""
