"""Why a training job failed, in words a user can act on (stored as the job's error)."""

from __future__ import annotations


class TrainingError(Exception):
    """A job cannot produce a model from the current configuration or data."""
