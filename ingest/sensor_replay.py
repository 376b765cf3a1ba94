"""The loops behind `earshot sensor` (:mod:`ingest.client_cli`): recordings played back to
back in time, as windows of vectors computed here (``stream``, batched, paced in real time
if asked, with the audio following the windows it covers) or as whole files posted to the
audio endpoint (``upload``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from ingest.audio_shipper import AudioShipper
from ingest.client import AUDIO_TYPES, SensorClient, WindowSender
from ingest.features import embed_windows
from ingest.playback import SPEC, Recording, back_to_back, stream_windows


@dataclass
class Totals:
    windows: int = 0
    accepted: int = 0
    duplicates: int = 0
    counted: bool = True  # False over MQTT: the broker does not say what was new


Embed = Callable[[np.ndarray], np.ndarray]


def _paced(placed: list[tuple[Recording, int]], realtime: bool, embed: Embed = embed_windows
           ) -> Iterator[tuple[Recording, int, int, np.ndarray]]:
    """(file, its start, window start, vector) in order; with ``realtime``, each window only
    once its end has been 'heard'."""
    wall0, t0 = time.monotonic(), placed[0][1] if placed else 0
    hop_us = round(SPEC.hop_s * 1_000_000)
    for rec, start_us in placed:
        for t_us, vector in stream_windows(rec, start_us, embed):
            if realtime:
                due = wall0 + (t_us + hop_us - t0) / 1e6
                time.sleep(max(0.0, due - time.monotonic()))
            yield rec, start_us, t_us, vector


def _send(sender: WindowSender, times: list[int], vectors: list[np.ndarray],
          totals: Totals, condition: str | None) -> None:
    result = sender.send_windows(np.asarray(times, dtype=np.int64), np.stack(vectors),
                                 condition)
    totals.windows += len(times)
    if result is None:
        totals.counted = False
    else:
        totals.accepted += result.accepted
        totals.duplicates += result.duplicates


class _Batches:
    """Windows gathered into requests; with an AudioShipper, each file's audio follows
    the windows it covers."""

    def __init__(self, sender: WindowSender, batch: int, audio: AudioShipper | None,
                 bar: tqdm, condition: str | None = None) -> None:
        self.sender, self.batch, self.audio, self.bar = sender, batch, audio, bar
        self.condition = condition
        self.totals = Totals()
        self.times: list[int] = []
        self.vectors: list[np.ndarray] = []
        self.file: tuple[Recording, int] | None = None
        self.file_windows = 0

    def add(self, rec: Recording, file_start: int, t_us: int, vector: np.ndarray) -> None:
        if self.file != (rec, file_start):
            self.finish_file()
            self.file, self.file_windows = (rec, file_start), 0
        self.times.append(t_us)
        self.vectors.append(vector)
        self.file_windows += 1
        if len(self.times) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if self.times:
            _send(self.sender, self.times, self.vectors, self.totals, self.condition)
            self.bar.update(len(self.times))
            self.times, self.vectors = [], []
        if self.audio is not None and self.file is not None:
            self.audio.windows_sent(*self.file, self.file_windows)

    def finish_file(self) -> None:
        self.flush()
        if self.audio is not None and self.file is not None:
            self.audio.file_done(*self.file, self.file_windows)


def stream(sender: WindowSender, recordings: list[Recording], start_us: int, batch: int,
           realtime: bool, progress: bool = True,
           audio: AudioShipper | None = None, condition: str | None = None,
           embed: Embed = embed_windows) -> Totals:
    """Send every full window of the recordings, ``batch`` windows per request (and, with
    ``audio``, the recordings themselves after the windows they cover), each request
    declaring ``condition`` when given; `embed` turns mono 16 kHz windows into vectors
    (default logmel-v1)."""
    expected = sum(rec.frames * SPEC.sample_rate // rec.sample_rate // SPEC.window_samples
                   for rec in recordings)
    with tqdm(total=expected, unit="win", disable=not progress) as bar:
        batches = _Batches(sender, batch, audio, bar, condition)
        for rec, file_start, t_us, vector in _paced(back_to_back(recordings, start_us),
                                                    realtime, embed):
            batches.add(rec, file_start, t_us, vector)
        batches.finish_file()
    return batches.totals


def upload(client: SensorClient, recordings: list[Recording], start_us: int, *,
           baseline: bool, label: str | None, progress: bool = True,
           condition: str | None = None) -> Totals:
    """One audio request per file, files back to back in time from ``start_us``."""
    totals = Totals()
    placed = back_to_back(recordings, start_us)
    with tqdm(placed, unit="file", disable=not progress) as bar:
        for rec, file_start in bar:
            bar.set_postfix_str(rec.path.name)
            content_type = AUDIO_TYPES.get(rec.path.suffix.lower(), "application/octet-stream")
            result = client.upload_audio(rec.path.read_bytes(), start_us=file_start,
                                         baseline=baseline, label=label,
                                         condition=condition, content_type=content_type)
            totals.windows += result.windows
            totals.accepted += result.accepted
            totals.duplicates += result.duplicates
    return totals
