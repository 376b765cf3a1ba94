"""Training data of the fleet embedding: 1 s windows of every sensor's stored audio (live
and pinned), with an auxiliary label per window that needs no annotator.

The label is machine / sensor (the section) / operating condition (the condition covering
the window, `service.training.conditions`). When the fleet holds a single such class the
recording (a contiguous span of one sensor's audio) is the label instead: instance
discrimination still learns an embedding that tells sounds apart. The windows are spread
evenly over all held audio and capped at `max_windows` (64 kB each at 16 kHz).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import numpy as np
import psycopg

from ingest.audio_store import held_ranges, read_audio
from ingest.features import to_mono_16k
from service.queries import fleet_embeddings as q
from service.training import conditions
from service.training.errors import TrainingError

WINDOW = timedelta(seconds=1)
SAMPLES = 16_000
PIECE_S = timedelta(seconds=600)  # longest audio read (and resampled) at once
_FROM = datetime(1970, 1, 1, tzinfo=UTC)
_TO = datetime(9999, 1, 1, tzinfo=UTC)


class NoFleetAudioError(TrainingError):
    """Too little stored audio to learn an embedding from."""


@dataclass
class FleetSet:
    clips: np.ndarray  # (n, 16000) float32
    labels: np.ndarray  # auxiliary class per clip
    groups: np.ndarray  # recording per clip
    aux_task: str  # "machine/sensor/condition" or "recording"
    n_recordings: int
    machines: int
    sensors: int
    windows_held: int
    per_class: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Window:
    sensor: UUID
    machine: UUID
    recording: int
    start: datetime


@dataclass(frozen=True)
class _Span:
    sensor: UUID
    machine: UUID
    start: datetime
    windows: int


def _spans(conn: psycopg.Connection) -> list[_Span]:
    """Every contiguous held recording with at least one whole window."""
    out = []
    for sensor, machine in q.audio_sensors(conn):
        for lo, hi in held_ranges(conn, sensor, _FROM, _TO, clip=False):
            count = int((hi - lo) / WINDOW)
            if count > 0:
                out.append(_Span(sensor, machine, lo, count))
    return out


def _pick(spans: list[_Span], max_windows: int) -> list[_Window]:
    """At most `max_windows` windows spread evenly over all held audio, found through the
    spans' cumulative counts (never a list of every held window: a fleet holds millions)."""
    ends = np.cumsum([s.windows for s in spans])
    total = int(ends[-1])
    picks = np.unique(np.linspace(0, total - 1, min(max_windows, total)).astype(np.int64))
    which = np.searchsorted(ends, picks, side="right")
    firsts = ends - np.asarray([s.windows for s in spans])
    return [_Window(spans[i].sensor, spans[i].machine, int(i),
                    spans[i].start + int(p - firsts[i]) * WINDOW)
            for p, i in zip(picks.tolist(), which.tolist(), strict=True)]


def _pieces(rows: list[int], chosen: list[_Window]) -> list[list[int]]:
    """Runs of one recording's picks spanning less than PIECE_S: each read holds at most
    that much audio, however sparse the picks."""
    pieces: list[list[int]] = []
    for i in rows:
        if pieces and chosen[i].start - chosen[pieces[-1][0]].start < PIECE_S:
            pieces[-1].append(i)
        else:
            pieces.append([i])
    return pieces


def _read(conn: psycopg.Connection, chosen: list[_Window]) -> np.ndarray:
    """Each chosen window's audio, mono 16 kHz, read a piece of one recording at a time."""
    clips = np.zeros((len(chosen), SAMPLES), np.float32)
    by_recording: dict[int, list[int]] = defaultdict(list)
    for i, w in enumerate(chosen):
        by_recording[w.recording].append(i)
    for rows in by_recording.values():
        for part in _pieces(rows, chosen):
            first, last = chosen[part[0]].start, chosen[part[-1]].start
            held = read_audio(conn, chosen[part[0]].sensor, first, last + WINDOW)
            mono = to_mono_16k(held.samples, held.sample_rate).astype(np.float32)
            for i in part:
                at = round((chosen[i].start - first) / WINDOW * SAMPLES)
                piece = mono[at:at + SAMPLES]
                clips[i, :piece.size] = piece
    return clips


def _labels(conn: psycopg.Connection, chosen: list[_Window]) -> np.ndarray:
    labels = np.empty(len(chosen), dtype=object)
    by_machine: dict[UUID, list[int]] = defaultdict(list)
    for i, w in enumerate(chosen):
        by_machine[w.machine].append(i)
    for machine, rows in by_machine.items():
        rows.sort(key=lambda i: chosen[i].start)
        names = conditions.for_machine(conn, machine, [chosen[i].start for i in rows])
        for j, i in enumerate(rows):
            condition = conditions.DEFAULT if names is None else str(names[j])
            labels[i] = f"{machine}/{chosen[i].sensor}/{condition}"
    return labels


def collect(conn: psycopg.Connection, max_windows: int) -> FleetSet:
    """The training set, or NoFleetAudioError saying what is missing."""
    spans = _spans(conn)
    if len(spans) < 2:
        raise NoFleetAudioError(
            f"the fleet embedding learns from stored audio, and the audio store holds "
            f"{len(spans)} recording(s) of at least 1 s "
            f"({sum(s.windows for s in spans)} window(s)); it needs at least 2: upload "
            "audio (POST /v1/sensors/{id}/audio with the sensor's audio policy 'keep', or "
            "earshot sensor stream --send-audio)")
    chosen = _pick(spans, max_windows)
    labels = _labels(conn, chosen)
    groups = np.asarray([w.recording for w in chosen])
    aux_task = "machine/sensor/condition"
    if np.unique(labels).size < 2:
        labels, aux_task = groups.astype(str).astype(object), "recording"
    classes, counts = np.unique(labels.astype(str), return_counts=True)
    return FleetSet(_read(conn, chosen), labels.astype(str), groups, aux_task, len(spans),
                    len({w.machine for w in chosen}), len({w.sensor for w in chosen}),
                    sum(s.windows for s in spans),
                    dict(zip(classes.tolist(), counts.tolist(), strict=True)))
