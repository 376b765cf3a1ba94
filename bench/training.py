"""Training: fit time and peak memory per algorithm on 10k, 100k and 1M windows of the
built-in embedding, and scoring throughput (windows/s) per algorithm."""

from __future__ import annotations

import gc
import math
import multiprocessing
from pathlib import Path

import numpy as np

from bench.common import (
    SR,
    Context,
    Section,
    Table,
    check,
    fmt,
    load_16k,
    machine_recordings,
    peak_rss_mib,
    ratio,
    repeat,
    reset_peak,
    rss_mib,
    run_isolated,
)
from detectors import registry
from ingest.features import embed

SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 3_000, 10_000)
SCORE_ROWS = 10_000
# Noise per dimension as a fraction of that dimension's spread: enough that tiled copies are
# not exact duplicates (kNN, ECOD ties), small enough to keep the real structure.
JITTER = 0.05
FIT_TARGET_S = 90.0
# A 1M fit extrapolated beyond this is skipped so `make bench` stays within its budget.
SKIP_ABOVE_S = 240.0
# A child (one algorithm at every size) still running after this is killed.
CHILD_TIMEOUT_S = 400.0
TIMED_OUT = "timed out"
_CHUNK = 65_536
# Variants beyond each algorithm's defaults, e.g. {"knn k=10": ("knn", {"n_neighbors": 10})}.
EXTRA_VARIANTS: dict[str, tuple[str, dict[str, object]]] = {}
# `earshot` runs every process with one BLAS/OpenMP thread (service/cli.py); so do the fits.
THREADS = 1


def variants() -> dict[str, tuple[str, dict[str, object]]]:
    """Display name -> (registry algorithm, params): every algorithm with its defaults."""
    plain: dict[str, tuple[str, dict[str, object]]] = {
        name: (name, {}) for name in registry.ALGORITHMS
    }
    return plain | EXTRA_VARIANTS


def base_embeddings(ctx: Context) -> np.ndarray:
    """logmel-v1 windows (1 s hop) of every machine recording in the data dir."""
    paths = machine_recordings(ctx.data_dir)
    return np.concatenate([embed(load_16k(path, ctx.data_dir), SR) for path in paths])


def write_dataset(base: np.ndarray, n_rows: int, path: Path, seed: int = 0) -> None:
    """Tile ``base`` in order up to ``n_rows`` rows, add Gaussian jitter, save as .npy."""
    rng = np.random.default_rng(seed + n_rows)
    scale = (JITTER * base.std(axis=0)).astype(np.float32)
    shape = (n_rows, base.shape[1])
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
    for start in range(0, n_rows, _CHUNK):
        rows = np.arange(start, min(n_rows, start + _CHUNK))
        noise = rng.standard_normal((rows.size, base.shape[1]), dtype=np.float32) * scale
        out[rows] = base[rows % base.shape[0]] + noise
    out.flush()
    del out


def fit_one(windows: np.ndarray, algorithm: str, params: dict[str, object]) -> dict:
    """Fit one detector on ``windows``, then time its scoring."""
    detector = registry.build(algorithm, params, None)
    # Small fits are repeated (median) because one sub-second run on a shared box is noise.
    fits = repeat(lambda: detector.fit(windows), max_runs=3, budget_s=3.0)
    batch = np.ascontiguousarray(windows[:SCORE_ROWS])
    timing = repeat(lambda: detector.decision_function(batch), max_runs=3, budget_s=1.5)
    return {
        "fit_s": fits.median,
        "fit": fits.to_dict(),
        "score": timing.to_dict(),
        "score_wps": batch.shape[0] / timing.median,
        "model_windows": int(detector.n_train_windows_),
        "holdout_windows": int(detector.n_holdout_windows_),
        "steps": getattr(detector, "n_steps_", None),
    }


def _mean_covariance(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Chunked float64 accumulation: a plain np.cov would first copy 1M rows to float64.
    mean = windows.mean(axis=0, dtype=np.float64)
    gram = np.zeros((windows.shape[1], windows.shape[1]))
    for start in range(0, windows.shape[0], _CHUNK):
        centred = windows[start : start + _CHUNK].astype(np.float64) - mean
        gram += centred.T @ centred
    return mean, gram / (windows.shape[0] - 1)


def reference_one(windows: np.ndarray) -> dict:
    """The reference fit (mean, covariance, inverse) and its Mahalanobis scoring."""
    fitted: list[np.ndarray] = []

    def fit() -> None:
        mean, covariance = _mean_covariance(windows)
        fitted[:] = [mean, np.linalg.inv(covariance)]

    fits = repeat(fit, max_runs=3, budget_s=1.5)
    mean, precision = fitted
    batch = np.ascontiguousarray(windows[:SCORE_ROWS])

    def score() -> np.ndarray:
        centred = batch - mean
        return np.einsum("ij,jk,ik->i", centred, precision, centred)

    timing = repeat(score, max_runs=3, budget_s=1.5)
    return {"fit_s": fits.median, "fit": fits.to_dict(), "score": timing.to_dict(),
            "score_wps": batch.shape[0] / timing.median, "model_windows": windows.shape[0]}


def sizes_child(paths: dict[int, str], variant: tuple[str, dict[str, object]] | None) -> dict:
    """In a fresh process: one variant (None: the reference) at every size, smallest first.

    The peak-RSS mark is reset before each size, so each peak is that size's own.
    """
    done: dict[int, dict] = {}
    for n_rows, path in sorted(paths.items()):
        reason = skip_reason(done, n_rows)
        if reason:
            done[n_rows] = {"skipped": reason}
            continue
        gc.collect()
        reset_peak()
        windows = np.load(path)
        before = rss_mib()
        result = reference_one(windows) if variant is None else fit_one(windows, *variant)
        done[n_rows] = {**result, "rss_before_mib": before, "peak_mib": peak_rss_mib()}
        del windows
    return done


def _measure(paths: dict[int, str], variant: tuple[str, dict[str, object]] | None) -> dict:
    try:
        result, _ = run_isolated(sizes_child, paths, variant, threads=THREADS,
                                 timeout_s=CHILD_TIMEOUT_S)
    except multiprocessing.TimeoutError:
        return {n: {"skipped": f"{TIMED_OUT} after {CHILD_TIMEOUT_S:.0f} s"} for n in paths}
    return dict(result)


def skip_reason(done: dict[int, dict], n_rows: int) -> str | None:
    """Why a fit at ``n_rows`` is skipped, judged from the sizes already run, or None."""
    sizes = sorted(size for size, result in done.items() if "fit_s" in result)
    if not sizes or done[sizes[-1]]["fit_s"] <= FIT_TARGET_S:
        return None
    last, last_s = sizes[-1], done[sizes[-1]]["fit_s"]
    exponent = 1.0
    if len(sizes) > 1:
        prev_s = done[sizes[-2]]["fit_s"]
        exponent = min(2.0, max(0.0, math.log(last_s / prev_s) / math.log(last / sizes[-2])))
    estimate = last_s * (n_rows / last) ** exponent
    if estimate <= SKIP_ABOVE_S:
        return None
    return f"skipped: {last_s:.0f} s at {last:,}, extrapolated {estimate:.0f} s"


def measure_all(ctx: Context, sizes: tuple[int, ...]) -> tuple[dict, dict, int]:
    base = base_embeddings(ctx)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    paths = {n: str(ctx.out_dir / f"training_{n}.npy") for n in sizes}
    try:
        for n_rows, path in paths.items():
            write_dataset(base, n_rows, Path(path))
        reference = _measure(paths, None)
        results = {name: _measure(paths, variant) for name, variant in variants().items()}
    finally:
        for path in paths.values():
            Path(path).unlink(missing_ok=True)
    return results, reference, base.shape[0]


def _row(name: str, n_rows: int, result: dict, ref: dict, largest: int) -> list[str]:
    if "skipped" in result:
        target = check(False) if n_rows == largest else "—"
        return [name, f"{n_rows:,}", result["skipped"], *["—"] * 8, target]
    target = check(result["fit_s"] <= FIT_TARGET_S) if n_rows == largest else "—"
    steps = f" ({result['steps']} steps)" if result.get("steps") else ""
    return [
        name, f"{n_rows:,}", f"{result['model_windows']:,}{steps}", fmt(result["fit_s"]),
        fmt(ref["fit_s"]), ratio(result["fit_s"], ref["fit_s"]), fmt(result["peak_mib"]),
        fmt(result["peak_mib"] - result["rss_before_mib"]), fmt(result["score_wps"]),
        fmt(ref["score_wps"]), ratio(result["score_wps"], ref["score_wps"]), target,
    ]


def tables(results: dict, reference: dict, sizes: tuple[int, ...]) -> list[Table]:
    largest = sizes[-1]
    rows = [["reference (numpy covariance + Mahalanobis)", f"{n:,}", f"{n:,}", fmt(r["fit_s"]),
             "", "", fmt(r["peak_mib"]), fmt(r["peak_mib"] - r["rss_before_mib"]),
             fmt(r["score_wps"]), "", "", "—"] for n, r in reference.items()]
    for name, by_size in results.items():
        rows += [_row(name, n, r, reference[n], largest) for n, r in by_size.items()]
    main = Table(
        "Fit and scoring per algorithm and training size",
        ["algorithm", "training windows", "model fitted on", "fit s", "reference fit s",
         "ratio", "peak MiB", "Δ MiB over data", "scoring windows/s", "reference windows/s",
         "ratio", f"{largest:,} fit ≤ {FIT_TARGET_S:.0f} s"],
        rows,
    )
    growth_rows = []
    for name, by_size in [("reference", reference), *results.items()]:
        cells = [fmt(by_size[n].get("fit_s")) if "fit_s" in by_size[n] else "skipped"
                 for n in sizes]
        first, last = by_size[sizes[0]].get("fit_s"), by_size[largest].get("fit_s")
        growth_rows.append([name, *cells, ratio(last, first)])
    growth = Table(
        "Growth: fit seconds by training size",
        ["algorithm", *[f"{n:,}" for n in sizes], f"{sizes[0]:,} → {largest:,}"],
        growth_rows,
    )
    return [main, growth]


TEXT = """
**Data.** Real `logmel-v1` embeddings (`ingest.features.embed`, 1 s windows) of all {n_base}
windows of the {n_files} machine recordings in the data dir (BLDC, MIMII, DCASE 2023), tiled
in order up to each size with Gaussian jitter (sigma = {jitter} x each dimension's standard
deviation) so copies are not exact duplicates. These are *not* {largest:,} distinct real
windows: the figures measure cost, not accuracy.

**Method.** Every algorithm in `detectors.registry` is built with its defaults
(`registry.build(name, {{}}, None)`). One freshly spawned process per algorithm, with one
BLAS/OpenMP thread as `earshot` runs its processes (so figures are per core), runs the
sizes smallest first. *Fit s* is the median of up to 3 `fit` calls (as many as fit in 3 s),
each covering standardisation, the blocked hold-out split, the model and threshold
calibration on held-out windows. A size is skipped when the previous one took over
{target:.0f} s and extrapolates beyond {skip:.0f} s; a process still running after
{timeout:.0f} s is killed. *Model fitted on* is what the detector's own `max_train`
subsampling kept (plus optimiser steps for the autoencoder). *Peak MiB* is the process's
peak resident size at that size (VmHWM, reset before loading the windows: imports, data,
fit and scoring); *Δ MiB over data* subtracts the resident size after loading the
windows, i.e. what fitting and scoring added. Scoring: `decision_function` on
{score_rows:,} windows, median of up to 3 runs.

**Reference, same run, same data.** A plain numpy fit: mean and covariance (float64,
chunked) and its inverse, then squared Mahalanobis distances for scoring. It is the least
work any of these detectors can do on all rows, so *ratio* reads "times the cost of the
simplest possible model" and stays meaningful when the shared machine's speed drifts.
Target: a {largest:,}-window fit within {target:.0f} s (subsampling must bound it).
"""


def run(ctx: Context) -> Section:
    sizes = QUICK_SIZES if ctx.quick else SIZES
    results, reference, n_base = measure_all(ctx, sizes)
    text = TEXT.format(n_base=n_base, n_files=len(machine_recordings(ctx.data_dir)),
                       jitter=JITTER, largest=sizes[-1], score_rows=SCORE_ROWS,
                       target=FIT_TARGET_S, skip=SKIP_ABOVE_S, timeout=CHILD_TIMEOUT_S)
    raw = {"sizes": list(sizes), "reference": reference, "algorithms": results,
           "base_windows": n_base, "jitter": JITTER}
    return Section("training", "Training: fit time, peak memory and scoring throughput",
                   text, tables(results, reference, sizes), raw)
