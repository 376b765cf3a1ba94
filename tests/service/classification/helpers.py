"""Real audio and real API flows for the classification tests: clips of DATA_DIR uploaded
through `POST /v1/sensors/{id}/audio`, labels and classifier configs through the API,
training through the job runner and predictions through the scorer (both in-process, as
the scheduler process runs them)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import psycopg
import soundfile as sf
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from ingest.features import to_mono_16k
from service.scoring.scorer import Scorer
from service.settings import Settings
from service.training import runner
from tests.conftest import DATA_DIR

SR = 16000
MAX_SCORER_STEPS = 200


def make_sensor(admin: TestClient, kind: str = "logmel-v1",
                name: str = "line-1") -> tuple[str, str]:
    """(machine_id, sensor_id) created through the API."""
    machine = admin.post("/v1/machines", json={"name": name, "kind": "conveyor"})
    assert machine.status_code == 201, machine.text
    machine_id = machine.json()["id"]
    sensor = admin.post(f"/v1/machines/{machine_id}/sensors",
                        json={"name": "mic", "embedding": {"kind": kind}})
    assert sensor.status_code == 201, sensor.text
    return machine_id, sensor.json()["id"]


def upload(admin: TestClient, sensor_id: str, body: bytes, start: datetime,
           content_type: str = "audio/wav", **params: Any) -> dict[str, Any]:
    response = admin.post(f"/v1/sensors/{sensor_id}/audio", content=body,
                          params={"start": start.isoformat(), **params},
                          headers={"content-type": content_type})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def wav(samples: np.ndarray, sr: int = SR) -> bytes:
    """16-bit PCM WAV, as a recorder would write it."""
    out = io.BytesIO()
    sf.write(out, np.clip(samples, -1.0, 1.0), sr, format="WAV", subtype="PCM_16")
    return out.getvalue()


def whole_seconds_ago(seconds: float) -> datetime:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).replace(microsecond=0)


def train(admin: TestClient, settings: Settings, pool: ConnectionPool, machine_id: str,
          target: str = "classifier") -> dict[str, Any]:
    """POST train, run the queued job as the scheduler would; the job afterwards."""
    accepted = admin.post(f"/v1/machines/{machine_id}/train", json={"target": target})
    assert accepted.status_code == 202, accepted.text
    outcome = runner.run_one(settings, pool)
    assert outcome is not None and str(outcome.job_id) == accepted.json()["job_id"]
    job: dict[str, Any] = admin.get(f"/v1/jobs/{outcome.job_id}").json()
    return job


def score_all(pool: ConnectionPool, scorer: Scorer | None = None) -> tuple[int, int]:
    """Run scorer iterations until the queue is drained: (scores, predictions) stored."""
    scorer = scorer or Scorer()
    scored = predicted = 0
    with pool.connection() as conn:
        for _ in range(MAX_SCORER_STEPS):
            result = scorer.step(conn)
            scored, predicted = scored + result.inserted, predicted + result.predicted
            if not result.more:
                return scored, predicted
    raise AssertionError("the scorer did not drain the queue")


def count(conn: psycopg.Connection, query: str, *params: Any) -> int:
    conn.commit()  # a fresh snapshot: other connections committed since
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return int(row[0])


@cache
def load_16k(path: Path) -> np.ndarray:
    samples, sr = sf.read(path, dtype="float32", always_2d=True)
    return to_mono_16k(samples, int(sr))


def esc10_clips(label: str) -> list[Path]:
    """The 8 clips of ESC-10 fold 1 (the data dir now holds folds 1-4: these tests were
    sized, and their clips split, for one fold)."""
    return sorted((DATA_DIR / "esc10").glob(f"esc10__{label}__1-*.ogg"))


@dataclass(frozen=True)
class Recording:
    samples: np.ndarray
    events: list[tuple[str, float, float]]  # (class, start s, end s) from the start

    @property
    def seconds(self) -> float:
        return self.samples.shape[0] / SR


def sound_intervals(clip: np.ndarray, top_db: float = 30.0, min_gap_s: float = 1.0,
                    min_len_s: float = 0.1) -> list[tuple[float, float]]:
    """Where a clip sounds (seconds): non-silent stretches (within `top_db` of its peak),
    joined across gaps shorter than `min_gap_s` (a 1 s window cannot see a shorter gap:
    four barks 0.5 s apart are one barking event at this resolution)."""
    joined: list[list[float]] = []
    for lo, hi in librosa.effects.split(clip, top_db=top_db) / SR:
        if joined and lo - joined[-1][1] < min_gap_s:
            joined[-1][1] = hi
        else:
            joined.append([lo, hi])
    return [(lo, hi) for lo, hi in joined if hi - lo >= min_len_s]


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)) + 1e-12))


def mix(background: np.ndarray, events: list[tuple[str, Path, float, float]]) -> Recording:
    """`background` with each (class, clip, at s, snr dB) added: the clip trimmed to where it
    sounds, scaled to `snr` dB over the background's RMS. References: the clip's sound
    intervals, shifted to `at`."""
    y = background.astype(np.float64).copy()
    found: list[tuple[str, float, float]] = []
    for label, path, at, snr_db in events:
        clip = load_16k(path)
        intervals = sound_intervals(clip)
        first, last = intervals[0][0], intervals[-1][1]
        part = clip[int(first * SR):int(last * SR)]
        gain = _rms(background) * 10 ** (snr_db / 20) / _rms(part[np.abs(part) > 1e-4])
        i = int(at * SR)
        y[i:i + part.size] += gain * part
        found += [(label, at + lo - first, at + hi - first) for lo, hi in intervals]
    peak = float(np.abs(y).max())
    return Recording(y / peak * 0.9 if peak > 0.9 else y, sorted(found, key=lambda e: e[1]))


def problem(response: Any, status: int, *phrases: str) -> dict[str, Any]:
    """Assert an RFC 9457 answer with `status` whose detail contains every phrase."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    for phrase in phrases:
        assert phrase in body["detail"], body["detail"]
    return body


def labelled_machine(admin: TestClient, classes: tuple[str, ...], clips_per_class: int,
                     first_s: float = 7200, spacing_s: int = 20,
                     name: str = "labelled") -> tuple[str, str, datetime]:
    """A machine whose sensor holds real ESC-10 clips uploaded with their class as label,
    `spacing_s` apart; (machine_id, sensor_id, time after the last clip)."""
    machine_id, sensor_id = make_sensor(admin, name=name)
    at = whole_seconds_ago(first_s)
    for label in classes:
        for path in esc10_clips(label)[:clips_per_class]:
            upload(admin, sensor_id, path.read_bytes(), at, "audio/ogg", label=label)
            at += timedelta(seconds=spacing_s)
    return machine_id, sensor_id, at
