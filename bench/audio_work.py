"""The audio benchmark's workloads (bench.audio renders them): real recordings, uploads
through the API against binary COPY of the same chunks, WAV and spectrogram reads against
the raw SELECT and librosa alone, and the bytes each codec stores per second of sound."""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import librosa
import numpy as np
import psycopg
import soundfile as sf

from bench import stack
from bench.common import DATA_DIR, read_manifest, repeat
from ingest import audio_chunks
from ingest.audio_chunks import EncodedChunk

RATE = 16_000  # the ingest clips: the data dir's 16 kHz mono machine recordings, as recorded
CREATE_REFERENCE = """
CREATE TABLE IF NOT EXISTS bench_audio_copy (LIKE audio_chunks INCLUDING ALL);
ALTER TABLE bench_audio_copy ALTER COLUMN data SET STORAGE EXTERNAL;
SELECT create_hypertable('bench_audio_copy', 'received_at', if_not_exists => true,
                         chunk_time_interval => interval '6 hours');
"""
COPY_REFERENCE = ("COPY bench_audio_copy (sensor_id, t_start, t_end, sample_rate, channels, "
                  "frames, codec, data) FROM STDIN WITH (FORMAT binary)")
COPY_TYPES = ["uuid", "timestamptz", "timestamptz", "int4", "int2", "int4", "text", "bytea"]
SELECT_ROWS = """
SELECT sensor_id, t_start, t_end, sample_rate, channels, frames, codec, data FROM audio_chunks
WHERE sensor_id = %s AND t_start >= %s AND t_start < %s ORDER BY t_start
"""
SELECT_BYTES = """
SELECT data FROM audio_chunks
WHERE sensor_id = %s AND t_start < %s AND t_end > %s ORDER BY t_start
"""
TABLE_BYTES = "SELECT hypertable_size('audio_chunks')"


# --- real recordings ----------------------------------------------------------------------


def machine_rows(data_dir: Path = DATA_DIR) -> list[dict[str, str]]:
    """Manifest rows of machine recordings (normal or anomalous; not ESC-10)."""
    return [r for r in read_manifest(data_dir) if r["label"] in ("normal", "anomaly")]


def read_native(path: str, data_dir: Path = DATA_DIR) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(data_dir / path, dtype="float32", always_2d=True)
    return samples, int(rate)


@dataclass
class Recordings:
    """The 16 kHz mono machine recordings played back to back, shape (frames, 1); `take`
    hands out the next `seconds` (cycling), so every upload carries different real sound."""

    samples: np.ndarray
    at: int = 0

    @classmethod
    def load(cls, data_dir: Path = DATA_DIR, limit_s: float = 1200.0) -> Recordings:
        parts, total = [], 0
        for row in machine_rows(data_dir):
            if row["sample_rate"] == str(RATE) and row["channels"] == "1":
                part, _ = read_native(row["path"], data_dir)
                parts.append(part)
                total += part.shape[0]
                if total >= limit_s * RATE:
                    break
        return cls(np.concatenate(parts))

    def take(self, seconds: float) -> np.ndarray:
        needed = round(seconds * RATE)
        index = (self.at + np.arange(needed)) % self.samples.shape[0]
        self.at = int(index[-1]) + 1
        return self.samples[index]


def wav16(samples: np.ndarray, rate: int = RATE) -> bytes:
    """A 16-bit PCM WAV, what a sensor sends (the recordings are 16-bit: exact)."""
    out = io.BytesIO()
    sf.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def storage_groups(data_dir: Path = DATA_DIR, seconds: float = 30.0
                   ) -> list[tuple[str, np.ndarray, int]]:
    """(label, native samples, rate): up to `seconds` of each machine type's recordings
    back to back, from one dataset per type, at each rate and channel layout it was
    recorded with."""
    chosen: dict[str, str] = {}  # machine type -> dataset
    groups: dict[tuple[str, str, int, int], list[np.ndarray]] = {}
    # MIMII first: it has the most of each type it covers.
    for row in sorted(machine_rows(data_dir), key=lambda r: not r["path"].startswith("mimii")):
        kind, dataset = row["machine_type"], row["path"].split("/", 1)[0]
        if kind.startswith("unknown") or chosen.setdefault(kind, dataset) != dataset:
            continue
        key = (kind, dataset, int(row["sample_rate"]), int(row["channels"]))
        parts = groups.setdefault(key, [])
        if sum(p.shape[0] for p in parts) < seconds * key[2]:
            parts.append(read_native(row["path"], data_dir)[0])
    out = []
    for (kind, dataset, rate, channels), parts in groups.items():
        layout = "mono" if channels == 1 else f"{channels} ch"
        label = f"{kind} ({dataset}, {rate / 1000:g} kHz {layout})"
        out.append((label, np.concatenate(parts)[: round(seconds * rate)], rate))
    return out


# --- uploads and the COPY reference -------------------------------------------------------


@dataclass
class Timeline:
    """Consecutive upload start times per sensor (a month ago), so one sensor's uploads
    join into one held range."""

    origin: datetime
    offsets_s: dict[str, float] = field(default_factory=dict)

    def take(self, sensor: str, seconds: float) -> datetime:
        offset = self.offsets_s.get(sensor, 0.0)
        self.offsets_s[sensor] = offset + seconds
        return self.origin + timedelta(seconds=offset)


def stored_rows(conn: psycopg.Connection, sensor: UUID, start: datetime,
                seconds: float) -> list[tuple[Any, ...]]:
    """The audio_chunks rows an upload stored, as the reference writes them again."""
    return conn.execute(SELECT_ROWS, (sensor, start, start + timedelta(seconds=seconds))
                        ).fetchall()


def copy_rows(conn: psycopg.Connection, rows: list[tuple[Any, ...]]) -> None:
    """The reference writer: the rows through psycopg's binary COPY, one commit."""
    with conn.cursor() as cur, cur.copy(COPY_REFERENCE) as copy:
        copy.set_types(COPY_TYPES)
        for row in rows:
            copy.write_row(row)
    conn.commit()


def upload_once(st: stack.Stack, client: httpx.Client, ref_conn: psycopg.Connection,
                sensor: str, codec: str, samples: np.ndarray, start: datetime) -> dict[str, float]:
    """One upload through the API (wall at the client, API process CPU), then the chunk
    rows it stored (the same encoded bytes) written again with COPY (wall)."""
    body, seconds = wav16(samples), samples.shape[0] / RATE
    cpu0, started = st.api.cpu_seconds(), time.perf_counter()
    answer = stack.upload_audio(client, sensor, body, "audio/wav", start)
    api_s, api_cpu_s = time.perf_counter() - started, st.api.cpu_seconds() - cpu0
    if abs(answer["audio"]["seconds"] - seconds) > 1e-3 or answer["audio"]["duplicate_chunks"]:
        raise stack.StackError(f"{codec}: stored {answer['audio']} of {seconds:g} s sent")
    rows = stored_rows(ref_conn, UUID(sensor), start, seconds)
    ref_conn.commit()
    started = time.perf_counter()
    copy_rows(ref_conn, rows)
    copy_s = time.perf_counter() - started
    return {"seconds": seconds, "api_s": api_s, "api_cpu_s": api_cpu_s, "copy_s": copy_s,
            "bytes": answer["audio"]["bytes"], "chunks": answer["audio"]["chunks"],
            "copy_bytes": sum(len(r[-1]) for r in rows)}


def ingest_cell(st: stack.Stack, client: httpx.Client, ref_conn: psycopg.Connection,
                sensor: str, codec: str, recordings: Recordings, timeline: Timeline,
                seconds: float, repeats: int) -> dict[str, Any]:
    runs = [upload_once(st, client, ref_conn, sensor, codec, recordings.take(seconds),
                        timeline.take(sensor, seconds))
            for _ in range(repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return {"codec": codec, "clip_s": seconds, "uploads": repeats, **med,
            "api_rate": seconds / med["api_s"], "copy_rate": seconds / med["copy_s"],
            "api_cpu_per_audio_s": med["api_cpu_s"] / seconds}


# --- reads ---------------------------------------------------------------------------------


def timed(fn: Callable[[], object], min_runs: int, max_runs: int, budget_s: float,
          cpu: Callable[[], float] = time.process_time) -> dict[str, Any]:
    """Wall seconds per call (p50, p95) and the CPU seconds per call of whoever does the
    work: this process by default, the API process for requests (`cpu`). On a loaded box
    the CPU figure drifts less than the wall clock."""
    cpu0 = cpu()
    timing = repeat(fn, min_runs=min_runs, max_runs=max_runs, budget_s=budget_s)
    return {**timing.to_dict(), "cpu_s": (cpu() - cpu0) / len(timing.runs)}


def get_ok(client: httpx.Client, path: str, params: dict[str, str],
           headers: dict[str, str] | None = None) -> httpx.Response:
    response = client.get(path, params=params, headers=headers)
    if response.status_code != 200:
        raise stack.StackError(f"GET {path} -> {response.status_code}: {response.text[:300]}")
    return response


def span(start: datetime, seconds: float) -> dict[str, str]:
    return {"start": stack.rfc3339(start), "end": stack.rfc3339(start + timedelta(seconds=seconds))}


def select_bytes(conn: psycopg.Connection, sensor: UUID, start: datetime,
                 seconds: float) -> int:
    """The reference read: the chunks' bytes, binary results (bytea as text would be hex)."""
    with conn.cursor(binary=True) as cur:
        rows = cur.execute(SELECT_BYTES, (sensor, start + timedelta(seconds=seconds),
                                          start)).fetchall()
    return sum(len(r[0]) for r in rows)


def melspectrogram_alone(samples: np.ndarray, rate: int) -> np.ndarray:
    """librosa's mel power spectrogram with the parameters ingest.spectrogram uses."""
    n_fft = 1024 if rate <= 24000 else 2048
    return librosa.feature.melspectrogram(y=samples.mean(axis=1), sr=rate, n_fft=n_fft,
                                          hop_length=n_fft // 2, center=False, n_mels=96,
                                          fmin=0.0, fmax=rate / 2)


# --- storage --------------------------------------------------------------------------------


def encoded_rate(samples: np.ndarray, rate: int, codec: str) -> tuple[float, list[EncodedChunk]]:
    """Bytes stored per second of sound, encoded exactly as the store encodes it."""
    chunks = audio_chunks.split(samples, rate, codec, "PCM_16")
    return sum(len(c.data) for c in chunks) / (samples.shape[0] / rate), chunks


def on_disk(conn: psycopg.Connection, write: Callable[[], object]) -> int:
    """Growth of audio_chunks (heap, TOAST and indexes: hypertable_size) over one write."""
    before = conn.execute(TABLE_BYTES).fetchone()
    write()
    conn.commit()
    after = conn.execute(TABLE_BYTES).fetchone()
    assert before is not None and after is not None
    return int(after[0]) - int(before[0])
