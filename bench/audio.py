"""The audio store (issue 12): ingest throughput per codec through the API against binary
COPY of the same chunks, WAV range reads against the raw SELECT, spectrograms against
librosa alone, and bytes per sensor-day per codec on real recordings — all in one run."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import numpy as np
import psycopg
from threadpoolctl import threadpool_limits

from bench import audio_work as work
from bench import stack
from bench.audio_tables import render
from bench.common import DATA_DIR, Context, Section
from ingest import audio_chunks
from ingest.audio import decode_audio
from ingest.audio_store import insert_audio, read_audio
from ingest.features import embed
from service import audio_ingest
from service.audio_ingest import AudioUpload, PreparedRecording
from service.db import make_pool
from service.queries.sensors import AudioPolicy, IngestTarget

CODECS = audio_chunks.CODECS


@dataclass(frozen=True)
class Plan:
    """Sizes of one run. Read ranges start at the first upload: every codec's sensor holds
    sum(sizes_s) * repeats seconds from there on without a gap, which must cover them."""

    sizes_s: tuple[float, ...] = (10.0, 60.0, 300.0)
    repeats: int = 2
    ranges_s: tuple[float, ...] = (10.0, 60.0, 600.0)
    phase_s: float = 60.0
    storage_s: float = 30.0
    stack_name: str = "audio"


QUICK = Plan(sizes_s=(2.0, 4.0, 8.0), repeats=1, ranges_s=(2.0, 4.0, 8.0), phase_s=4.0,
             storage_s=3.0)
KIND = "logmel-v1"


def create_sensor(client: httpx.Client, name: str, codec: str) -> tuple[str, str]:
    """(machine id, sensor id) of a logmel-v1 sensor keeping its audio with `codec`."""
    machine = stack.create_machine(client, name)
    found = stack.raise_for(client.post(f"/v1/machines/{machine}/sensors", json={
        "name": "mic", "embedding": {"kind": KIND},
        "audio": {"policy": "keep", "codec": codec}}))
    return machine, found["id"]


def measure_ingest(st: stack.Stack, client: httpx.Client, ref_conn: psycopg.Connection,
                   sensors: dict[str, tuple[str, str]], recordings: work.Recordings,
                   timeline: work.Timeline, sizes: tuple[float, ...],
                   repeats: int) -> list[dict[str, Any]]:
    """Codecs interleaved at each size, so load drift on the box hits them alike."""
    return [work.ingest_cell(st, client, ref_conn, sensors[codec][1], codec, recordings,
                             timeline, seconds, repeats)
            for seconds in sizes for codec in CODECS]


def phases(st: stack.Stack, codec: str, sensor: tuple[str, str], samples: np.ndarray,
           start: datetime, runs: int = 2) -> dict[str, float]:
    """Server work of one upload split in-process (median wall seconds): decode the body,
    embed, encode the chunks, then the store's own transaction (service.audio_ingest.commit:
    windows, audio, commit)."""
    body, pool = work.wav16(samples), make_pool(st.settings, max_size=1)
    target = IngestTarget(UUID(sensor[1]), UUID(sensor[0]), KIND, 128)
    pool.open(wait=True)
    embed(samples[:work.RATE], work.RATE, KIND)  # librosa's first call compiles (numba)
    out: list[dict[str, float]] = []
    try:
        for run in range(runs):
            at = start + timedelta(seconds=run * samples.shape[0] / work.RATE)
            steps, t = {}, time.perf_counter()
            decoded = decode_audio(body, max_seconds=3600.0)
            steps["decode"], t = time.perf_counter() - t, time.perf_counter()
            values = embed(decoded.samples, decoded.sample_rate, KIND).astype(np.float32)
            steps["embed"], t = time.perf_counter() - t, time.perf_counter()
            chunks = audio_chunks.split(decoded.samples, decoded.sample_rate, codec,
                                        decoded.subtype)
            steps["encode"], t = time.perf_counter() - t, time.perf_counter()
            times = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) + \
                1_000_000 * np.arange(len(values), dtype=np.int64)
            prepared = PreparedRecording(decoded, times, values, chunks, at)
            audio_ingest.commit(pool, target, AudioPolicy(True, codec), prepared,
                                AudioUpload(at, None, False))
            steps["db"] = time.perf_counter() - t
            out.append(steps)
    finally:
        pool.close()
    return {k: statistics.median(s[k] for s in out) for k in out[0]}


def measure_reads(st: stack.Stack, client: httpx.Client, conn: psycopg.Connection, sensor: str,
                  start: datetime, ranges: tuple[float, ...]) -> list[dict[str, Any]]:
    out = []
    for seconds in ranges:
        params = work.span(start, seconds)
        wav = work.get_ok(client, f"/v1/sensors/{sensor}/audio", params)
        held = float(wav.headers["Earshot-Audio-Held-Seconds"])
        api = work.timed(partial(work.get_ok, client, f"/v1/sensors/{sensor}/audio", params),
                         5, 20, 4.0, st.api.cpu_seconds)
        select = work.timed(partial(work.select_bytes, conn, UUID(sensor), start, seconds),
                            5, 20, 2.0)
        inproc = work.timed(partial(read_audio, conn, UUID(sensor), start,
                                    start + timedelta(seconds=seconds)), 3, 10, 3.0)
        out.append({"range_s": seconds, "held_s": held, "wav_bytes": len(wav.content),
                    "stored_bytes": work.select_bytes(conn, UUID(sensor), start, seconds),
                    "api": api, "select": select, "read_audio": inproc})
    return out


def measure_spectrograms(st: stack.Stack, client: httpx.Client, conn: psycopg.Connection,
                         sensor: tuple[str, str], start: datetime,
                         ranges: tuple[float, ...]) -> list[dict[str, Any]]:
    machine, sensor_id = sensor
    path, out = f"/v1/machines/{machine}/spectrogram", []
    for seconds in ranges:
        params = {**work.span(start, seconds), "sensor_id": sensor_id}
        answer = work.get_ok(client, path, params, {"Accept": "application/json"}).json()
        png = work.timed(partial(work.get_ok, client, path, params), 3, 10, 5.0,
                         st.api.cpu_seconds)
        as_json = work.timed(partial(work.get_ok, client, path, params,
                                     {"Accept": "application/json"}), 3, 10, 5.0,
                             st.api.cpu_seconds)
        held = read_audio(conn, UUID(sensor_id), start, start + timedelta(seconds=seconds))
        alone = work.timed(partial(work.melspectrogram_alone, held.samples, held.sample_rate),
                           3, 10, 3.0)
        out.append({"range_s": seconds, "source": answer["source"],
                    "columns": len(answer["times_s"]), "png": png, "json": as_json,
                    "librosa": alone})
    return out


def measure_storage(conn: psycopg.Connection, sensors: dict[str, tuple[str, str]],
                    seconds: float, start: datetime, data_dir: Path) -> dict[str, Any]:
    """Encoded bytes per second per machine type and codec, and the growth of the real
    table (row, TOAST and index overhead included) when one codec's chunks are stored."""
    groups, per_type, disk = work.storage_groups(data_dir, seconds), [], {}
    encoded: dict[str, list[tuple[np.ndarray, int, list[Any]]]] = {c: [] for c in CODECS}
    for label, samples, rate in groups:
        row: dict[str, Any] = {"label": label, "rate": rate, "channels": samples.shape[1],
                               "pcm16_bps": rate * samples.shape[1] * 2.0}
        for codec in CODECS:
            row[codec], chunks = work.encoded_rate(samples, rate, codec)
            encoded[codec].append((samples, rate, chunks))
        per_type.append(row)
    for codec in CODECS:
        sensor = UUID(sensors[codec][1])
        items = encoded[codec]

        def write(items: list[tuple[np.ndarray, int, list[Any]]] = items,
                  sensor: UUID = sensor) -> None:
            for k, (_, rate, chunks) in enumerate(items):
                insert_audio(conn, sensor, start + timedelta(hours=k), chunks, rate)

        grown = work.on_disk(conn, write)
        audio_s = sum(s.shape[0] / r for s, r, _ in items)
        disk[codec] = {"chunks": sum(len(c) for _, _, c in items), "audio_s": audio_s,
                       "encoded_bytes": sum(len(x.data) for _, _, c in items for x in c),
                       "table_growth_bytes": grown}
    return {"types": per_type, "disk": disk}


def collect(plan: Plan, data_dir: Path = DATA_DIR) -> dict[str, Any]:
    assert max(plan.ranges_s) <= sum(plan.sizes_s) * plan.repeats, "reads would hit gaps"
    recordings = work.Recordings.load(data_dir, sum(plan.sizes_s) * plan.repeats * 3 + 60)
    origin = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    timeline = work.Timeline(origin)
    with threadpool_limits(1), stack.running_stack(plan.stack_name, scheduler=False) as st, \
            st.client(timeout_s=300.0) as client, st.connect(autocommit=True) as conn, \
            st.connect() as ref_conn:
        ref_conn.execute(work.CREATE_REFERENCE)
        ref_conn.commit()
        sensors = {c: create_sensor(client, f"audio-{c}", c) for c in CODECS}
        side = {c: create_sensor(client, f"audio-phases-{c}", c) for c in CODECS}
        for codec in CODECS:  # warm the API (imports, first encoder use) off the clock
            stack.upload_audio(client, side[codec][1], work.wav16(recordings.take(2.0)),
                               "audio/wav", origin - timedelta(days=1))
        ingest = measure_ingest(st, client, ref_conn, sensors, recordings, timeline,
                                plan.sizes_s, plan.repeats)
        split = {c: phases(st, c, side[c], recordings.take(plan.phase_s), origin)
                 for c in CODECS}
        reads = {c: measure_reads(st, client, conn, sensors[c][1], origin, plan.ranges_s)
                 for c in CODECS}
        spectra = measure_spectrograms(st, client, conn, sensors["flac"], origin,
                                       plan.ranges_s)
        storage = measure_storage(ref_conn, side, plan.storage_s, origin + timedelta(days=2),
                                  data_dir)
    return {"ingest": ingest, "phases": split, "phase_s": plan.phase_s, "reads": reads,
            "spectrograms": spectra, "storage": storage, "storage_s": plan.storage_s,
            "sizes_s": plan.sizes_s, "repeats": plan.repeats}


def run(ctx: Context) -> Section:
    raw = collect(QUICK if ctx.quick else Plan(), ctx.data_dir)
    text, tables = render(raw)
    return Section("audio", "Audio store: ingest, reads, spectrograms, storage", text,
                   tables, raw)
