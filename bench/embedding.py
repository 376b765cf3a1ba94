"""Embedding extraction: real-time factor of logmel-v1 per core, against librosa's bare mel
spectrogram of the same audio (and the resampling cost, shown separately)."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np

from bench.common import (
    SR,
    Context,
    Section,
    Table,
    Timing,
    concat_audio,
    fmt,
    machine_recordings,
    ratio,
    repeat,
    run_isolated,
)
from ingest.features import embed, to_mono_16k

SIZES_S = (10.0, 60.0, 600.0)
QUICK_SIZES_S = (2.0, 5.0, 20.0)
NATIVE_SR = 44_100
OPERATIONS = ("logmel-v1", "mel (reference)", "resample", "logmel-v1 from 44.1 kHz")


def bare_mel(y: np.ndarray) -> np.ndarray:
    """The reference: librosa's mel power spectrogram with logmel-v1's STFT and band count."""
    return librosa.feature.melspectrogram(y=y, sr=SR, n_fft=1024, hop_length=512, n_mels=64)


def _time_all(y: np.ndarray) -> dict[str, Timing]:
    # Untimed: the same audio at a common native rate, to time the 44.1 -> 16 kHz step.
    y_native = librosa.resample(y, orig_sr=SR, target_sr=NATIVE_SR, res_type="soxr_hq")
    calls = {
        "logmel-v1": lambda: embed(y, SR),
        "mel (reference)": lambda: bare_mel(y),
        "resample": lambda: to_mono_16k(y_native, NATIVE_SR),
        "logmel-v1 from 44.1 kHz": lambda: embed(y_native, NATIVE_SR),
    }
    return {
        name: repeat(call, min_runs=5, max_runs=20, budget_s=2.0) for name, call in calls.items()
    }


def measure_child(data_dir: str, sizes_s: tuple[float, ...]) -> dict[str, dict[str, dict]]:
    """In a fresh single-threaded process: timings per audio size and operation."""
    audio = concat_audio(machine_recordings(Path(data_dir)), max(sizes_s), Path(data_dir))
    # Warm-up outside the timings: numba compiles librosa's kernels on first use (~1 s).
    _time_all(audio[: 2 * SR])
    results: dict[str, dict[str, dict]] = {}
    for seconds in sizes_s:
        timings = _time_all(audio[: round(seconds * SR)])
        results[f"{seconds:g}"] = {
            name: {**t.to_dict(), "rtf": seconds / t.median} for name, t in timings.items()
        }
    return results


def tables(results: dict[str, dict[str, dict]]) -> list[Table]:
    rows = []
    for size, ops in results.items():
        logmel, mel = ops["logmel-v1"], ops["mel (reference)"]
        rows.append([
            size, fmt(logmel["rtf"]), fmt(mel["rtf"]), ratio(logmel["median_s"], mel["median_s"]),
            fmt(ops["resample"]["rtf"]), fmt(ops["logmel-v1 from 44.1 kHz"]["rtf"]),
            f"{fmt(logmel['p50_s'] * 1e3)} / {fmt(logmel['p95_s'] * 1e3)}",
            str(len(logmel["runs_s"])),
        ])
    main = Table(
        "Real-time factor on one core (audio seconds per compute second; higher is faster)",
        ["audio s", "logmel-v1 RTF", "bare mel RTF (reference)", "logmel-v1 cost / mel cost",
         "resample 44.1→16 kHz RTF", "logmel-v1 from 44.1 kHz RTF", "logmel-v1 p50 / p95 ms",
         "runs"],
        rows,
    )
    growth = Table(
        "Growth: median compute milliseconds by audio length",
        ["audio s", *OPERATIONS],
        [[size, *[fmt(ops[name]["median_s"] * 1e3) for name in OPERATIONS]]
         for size, ops in results.items()],
    )
    return [main, growth]


TEXT = """
**Audio.** Real machine recordings from the data dir (BLDC, MIMII, DCASE 2023, in manifest
order), downmixed and resampled to 16 kHz mono exactly as logmel-v1 steps 1-2 do, played
back to back to make {sizes} seconds of audio.

**Method.** All timings run in one freshly spawned process limited to one thread
(`OMP/MKL/OPENBLAS/NUMBA_NUM_THREADS=1` plus `threadpoolctl`), so the RTF is per core.
A warm-up pass on 2 s of audio runs first and is excluded (numba compiles librosa's
kernels on first use). Each figure is the median of 5-20 runs (as many as fit in ~2 s).
RTF = audio seconds / compute seconds.

- *logmel-v1*: `ingest.features.embed` on the 16 kHz audio (1 s windows, per-window mel,
  dB, band means and standard deviations).
- *Reference*: `librosa.feature.melspectrogram(y, sr=16000, n_fft=1024, hop_length=512,
  n_mels=64)` on the same 16 kHz audio: the bare mel power spectrogram, no windowing into
  1 s blocks, no dB, no statistics.
- *Resample*: `to_mono_16k` (soxr_hq) of the same audio first resampled (untimed) to
  44.1 kHz, the most common other rate in the data set; *logmel-v1 from 44.1 kHz* is the
  whole path a 44.1 kHz upload takes (resample + embed).

One core embedding at RTF *r* keeps up with *r* live sensors streaming audio.
"""


def run(ctx: Context) -> Section:
    sizes = QUICK_SIZES_S if ctx.quick else SIZES_S
    results, peak = run_isolated(measure_child, str(ctx.data_dir), sizes, threads=1)
    text = TEXT.format(sizes=", ".join(f"{s:g}" for s in sizes))
    text += f"\nPeak resident memory of the measuring process: {fmt(peak)} MiB.\n"
    raw = {"sizes_s": list(sizes), "results": results, "peak_mib": peak}
    return Section("embedding", "Embedding extraction: logmel-v1 real-time factor per core",
                   text, tables(results), raw)
