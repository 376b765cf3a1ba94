"""Shared benchmark plumbing: results, markdown tables, timing, isolated runs, real audio.

Benchmarks are modules with ``run(ctx: Context) -> Section``; :mod:`bench.run` renders the
sections into BENCHMARKS.md and ``bench/out/results.json``.
"""

from __future__ import annotations

import csv
import functools
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile as sf
from threadpoolctl import threadpool_limits

from ingest.features import embed_windows, to_mono_16k

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO.parent / "shared" / "data"
OUT_DIR = REPO / "bench" / "out"
SR = 16_000
# Every BLAS/OpenMP pool reads one of these when it starts, so they must be in the child's
# environment before numpy or torch is imported there.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    """What every benchmark gets: where things are, and whether to run small sizes only."""

    repo: Path = REPO
    data_dir: Path = DATA_DIR
    out_dir: Path = OUT_DIR
    quick: bool = False


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]

    def render(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.headers) + " |"]
        lines.append("|" + "|".join(" --- " for _ in self.headers) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


@dataclass
class Section:
    """One benchmark's results: prose (method, data, caveats), tables and raw figures."""

    name: str
    title: str
    text: str
    tables: list[Table] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def render(self, stamp: str) -> str:
        parts = [f"## {self.title}", "", stamp, "", self.text.strip()]
        parts += ["\n" + table.render() for table in self.tables]
        return "\n".join(parts) + "\n"


def fmt(value: float | None, digits: int = 3) -> str:
    """``digits`` significant figures, without scientific notation for everyday sizes."""
    if value is None or not np.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    magnitude = int(np.floor(np.log10(abs(value))))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def ratio(figure: float | None, reference: float | None) -> str:
    if figure is None or reference is None or reference == 0:
        return "—"
    return f"{figure / reference:.2f}x"


def check(ok: bool | None) -> str:
    return "—" if ok is None else ("✅" if ok else "❌")


@dataclass(frozen=True)
class Timing:
    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.runs, q))

    def to_dict(self) -> dict[str, Any]:
        return {"runs_s": self.runs, "median_s": self.median, "p50_s": self.percentile(50),
                "p95_s": self.percentile(95)}


def repeat(fn: Callable[[], object], *, min_runs: int = 1, max_runs: int = 5,
           budget_s: float = 3.0) -> Timing:
    """Wall-clock seconds of up to ``max_runs`` calls, stopping once ``budget_s`` is spent."""
    runs: list[float] = []
    spent = 0.0
    while len(runs) < max_runs and (len(runs) < min_runs or spent < budget_s):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
        spent += runs[-1]
    return Timing(runs)


def rss_mib() -> float:
    """Resident set size of this process now, in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident set size of this process since it exec'd, in MiB.

    VmHWM rather than ``getrusage().ru_maxrss``: Linux carries ru_maxrss across fork+exec,
    so a spawned child would report at least its parent's peak (every child looked the
    same). VmHWM belongs to the address space the exec created.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak() -> None:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0), so the next
    :func:`peak_rss_mib` covers only what runs after this call."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


@contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _in_child(fn: Callable[..., T], args: tuple[Any, ...], threads: int | None) -> tuple[T, float]:
    if threads is None:
        return fn(*args), peak_rss_mib()
    with threadpool_limits(threads):
        return fn(*args), peak_rss_mib()


def run_isolated(fn: Callable[..., T], *args: Any, threads: int | None = None,
                 timeout_s: float = 900.0) -> tuple[T, float]:
    """Run ``fn(*args)`` in a fresh spawned process; return its result and peak RSS (MiB).

    A fresh process per call keeps one measurement's memory peak (and warm caches) out of
    the next. ``threads`` caps BLAS/OpenMP/torch threads in the child.
    """
    env = {var: str(threads) for var in THREAD_VARS} if threads is not None else {}
    with _environ(env):
        pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        return pool.apply_async(_in_child, (fn, args, threads)).get(timeout=timeout_s)
    finally:
        pool.terminate()
        pool.join()


# --- real audio -------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """A recording from the data dir, or the ``[start_s, end_s)`` part of one."""

    path: str
    start_s: float = 0.0
    end_s: float | None = None

    @property
    def label(self) -> str:
        name = Path(self.path).stem
        if self.start_s == 0.0 and self.end_s is None:
            return name
        end = "end" if self.end_s is None else f"{self.end_s:g}"
        return f"{name}[{self.start_s:g}-{end} s]"


def read_manifest(data_dir: Path = DATA_DIR) -> list[dict[str, str]]:
    with (data_dir / "manifest.csv").open(newline="") as f:
        return list(csv.DictReader(f))


@functools.lru_cache(maxsize=256)
def _file_16k(path: Path) -> np.ndarray:
    samples, sr = sf.read(path, dtype="float32", always_2d=True)
    audio = to_mono_16k(samples, int(sr))
    audio.setflags(write=False)  # shared through the cache
    return audio


def load_16k(clip: Clip | str, data_dir: Path = DATA_DIR) -> np.ndarray:
    """Mono 16 kHz float64 samples, downmixed and resampled exactly as logmel-v1 does."""
    clip = Clip(clip) if isinstance(clip, str) else clip
    audio = _file_16k(data_dir / clip.path)
    start = round(clip.start_s * SR)
    end = None if clip.end_s is None else round(clip.end_s * SR)
    return audio[start:end]


def machine_recordings(data_dir: Path = DATA_DIR) -> list[str]:
    """Paths of every machine recording (all but the ESC-10 environmental sounds)."""
    return [row["path"] for row in read_manifest(data_dir) if row["label"] in ("normal", "anomaly")]


def concat_audio(paths: Sequence[str], seconds: float, data_dir: Path = DATA_DIR) -> np.ndarray:
    """The first ``seconds`` of the 16 kHz recordings played back to back (cycled if short)."""
    needed = round(seconds * SR)
    parts, total = [], 0
    for index in range(10_000):
        part = load_16k(paths[index % len(paths)], data_dir)
        parts.append(part)
        total += part.shape[0]
        if total >= needed:
            break
    return np.concatenate(parts)[:needed]


def windows_at_hop(y: np.ndarray, hop_s: float) -> np.ndarray:
    """1 s windows ``(n, SR)`` of 16 kHz samples ``y`` starting every ``hop_s`` seconds
    (overlapping when ``hop_s < 1``); none when ``y`` is shorter than one window."""
    if y.shape[0] < SR:
        return np.empty((0, SR), np.float32)
    view = np.lib.stride_tricks.sliding_window_view(y, SR)[:: round(hop_s * SR)]
    return np.ascontiguousarray(view)


def logmel_at_hop(clip: Clip | str, hop_s: float, data_dir: Path = DATA_DIR) -> np.ndarray:
    """logmel-v1 vectors of 1 s windows starting every ``hop_s`` seconds (overlapping when
    ``hop_s < 1``); each vector is exactly what logmel-v1 gives for that window."""
    return embed_windows(windows_at_hop(load_16k(clip, data_dir), hop_s))
