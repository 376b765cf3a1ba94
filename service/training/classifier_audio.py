"""Training data for classifiers that listen to the audio itself (`cnn`, input "audio" in
`detectors.classifiers`): the labelled windows' stored audio replaces their embeddings.

Which data allows which classifier: a `cnn` needs the audio of the labelled ranges in the
audio store; a sensor that only sends embeddings (or whose audio policy is off) keeps the
statistical classifiers. `PUT /classifier`, `POST /train` and the training job all answer
with what is missing (`MissingAudioError`) instead of training on nothing.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

import numpy as np
import psycopg

from detectors import classifiers
from ingest import audio_store
from service.classification.audio_clips import clip_samples, describe_missing, window_clips
from service.training.errors import TrainingError

# Windows of audio one training job holds in memory (64 kB each at 1 s): ~640 MB.
MAX_AUDIO_WINDOWS = 10_000
# Label ranges checked for audio (each is one index probe per sensor).
MAX_CHECKED_LABELS = 5_000


class MissingAudioError(TrainingError):
    """The labelled ranges have no stored audio for a classifier that needs it."""


def needs_audio(algorithm: str) -> bool:
    return classifiers.get_algorithm(algorithm).input == "audio"


def labels_without_audio(conn: psycopg.Connection, sensor_ids: list[UUID],
                         label_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Label ranges of which no sensor holds any audio."""
    return [r for r in label_rows[:MAX_CHECKED_LABELS]
            if not any(audio_store.held_ranges(conn, s, r["start_at"], r["end_at"])
                       for s in sensor_ids)]


def require_audio(conn: psycopg.Connection, machine_id: UUID, algorithm: str,
                  sensor_ids: list[UUID], label_rows: list[dict[str, Any]]) -> None:
    """MissingAudioError naming the label ranges without stored audio, if any."""
    if not needs_audio(algorithm):
        return
    if not sensor_ids:
        raise MissingAudioError(f"classifier {algorithm!r} classifies stored audio, and "
                                f"machine {machine_id} has no sensors")
    missing = labels_without_audio(conn, sensor_ids, label_rows)
    if missing:
        raise MissingAudioError(
            f"classifier {algorithm!r} learns from the sound itself, but machine "
            f"{machine_id} holds no stored audio for {len(missing)} of its "
            f"{len(label_rows)} label range(s): {describe_missing(missing)}. Upload the "
            "audio of those ranges (POST /v1/sensors/{id}/audio, with the sensor's audio "
            "policy 'keep'), delete those labels, or use a classifier that works on the "
            "windows' embeddings (logreg, random_forest, gradient_boosting, mlp)")


def with_audio(conn: psycopg.Connection, data: Any) -> Any:
    """`data` (a LabelledSet) with each held window's audio clip as its row; windows
    whose audio is not (fully) held are left out and counted in `data.audio`."""
    sensor_ids = [s.id for s in data.sensors]
    require_audio(conn, data.config["machine_id"], data.config["algorithm"], sensor_ids,
                  data.label_rows)
    rows = np.arange(len(data.times))
    if rows.size > MAX_AUDIO_WINDOWS:  # an even spread over the labelled time
        rows = rows[np.linspace(0, rows.size - 1, MAX_AUDIO_WINDOWS).astype(int)]
    n_samples = clip_samples(data.window_s.get(sensor_ids[0], 1.0))
    found = window_clips(conn, [data.sensor_ids[i] for i in rows],
                         [data.times[i] for i in rows], data.window_s, n_samples)
    keep = rows[found.held]
    stats = {"clip_samples": n_samples, "sample_rate": 16_000,
             "windows_with_audio": int(keep.size),
             "windows_without_audio": int(rows.size - keep.size),
             "capped_at": MAX_AUDIO_WINDOWS if len(data.times) > MAX_AUDIO_WINDOWS else None}
    return replace(data, values=found.clips[found.held], y=data.y[keep],
                   groups=data.groups[keep], times=[data.times[i] for i in keep],
                   sensor_ids=[data.sensor_ids[i] for i in keep], audio=stats)
