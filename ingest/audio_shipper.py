"""`earshot sensor stream --send-audio`: the recording itself goes along with its windows.

Audio is sent in chunks of whole windows (at least `chunk_s` long), each *after* the
windows it covers, so the server checks that the windows it computes from that audio
agree with the ones the sensor sent (docs/audio.md). The last chunk of a file carries the
file's trailing part-window too: every sample heard is kept. Chunks are FLAC (lossless)
at the file's own rate and channels; a retried chunk is stored once, like windows.
Over MQTT the chunks go to the sensor's audio topic (docs/mqtt.md).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Protocol

import soundfile as sf

from ingest.audio_chunks import flac_subtype
from ingest.playback import SPEC, Recording

FLAC_TYPE = "audio/flac"


class AudioUploader(Protocol):
    """Where chunks go: `SensorClient` (HTTP) or `MqttSender` (the audio topic)."""

    def upload_audio(self, audio: bytes, *, start_us: int, content_type: str) -> Any: ...


@dataclass
class ShippedAudio:
    chunks: int = 0
    seconds: float = 0.0


class AudioShipper:
    """Tracks, per file, which windows' audio has been sent."""

    def __init__(self, client: AudioUploader, chunk_s: float = 10.0) -> None:
        self.client, self.chunk_s = client, chunk_s
        self.shipped = ShippedAudio()
        self._file: tuple[Recording, int] | None = None
        self._sent_windows = 0

    def windows_sent(self, rec: Recording, file_start_us: int, windows: int) -> None:
        """`windows` of this file are now stored: ship their audio once it is long enough."""
        if self._file != (rec, file_start_us):
            self._file, self._sent_windows = (rec, file_start_us), 0
        rest = rec.frames - round(windows * SPEC.hop_s * rec.sample_rate)
        # A tail shorter than a window could not be sent alone: it goes with the last chunk.
        if (windows - self._sent_windows) * SPEC.hop_s >= self.chunk_s \
                and rest >= SPEC.window_s * rec.sample_rate:
            self._ship(rec, file_start_us, windows, last=False)

    def file_done(self, rec: Recording, file_start_us: int, windows: int) -> None:
        if self._file != (rec, file_start_us):
            self._file, self._sent_windows = (rec, file_start_us), 0
        self._ship(rec, file_start_us, windows, last=True)
        self._file = None

    def _ship(self, rec: Recording, file_start_us: int, windows: int, last: bool) -> None:
        first = round(self._sent_windows * SPEC.hop_s * rec.sample_rate)
        stop = rec.frames if last else round(windows * SPEC.hop_s * rec.sample_rate)
        if stop - first < SPEC.window_s * rec.sample_rate:
            return  # under one window: the server cannot place it (it would refuse it)
        samples, _ = sf.read(str(rec.path), start=first, stop=stop, dtype="float32",
                             always_2d=True)
        buffer = io.BytesIO()
        sf.write(buffer, samples, rec.sample_rate, format="FLAC",
                 subtype=flac_subtype(sf.info(str(rec.path)).subtype))
        start_us = file_start_us + round(self._sent_windows * SPEC.hop_s * 1e6)
        self.client.upload_audio(buffer.getvalue(), start_us=start_us, content_type=FLAC_TYPE)
        self.shipped.chunks += 1
        self.shipped.seconds += (stop - first) / rec.sample_rate
        self._sent_windows = windows
