"""ESC-10: what each of the `cnn` classifier's augmentations does (issue 14's "defaults
that win on the measurements"): each switched off on its own against the defaults
(ablation), and each alone against none, cross-validated by ESC fold.

Every fit runs in a fresh process with one thread, one after the other, folds in the
outer loop (every configuration on one test fold before the next fold starts), on all four
folds (56 fits of ~10-60 s each, by the box's load). Same data and model as
bench.esc10_cnn.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import OUT_DIR, Context, Section, Table, fmt, run_isolated
from bench.esc10_cnn import CACHE, fit_fold, load_esc10

ABLATION_FOLDS = (1, 2, 3, 4)
QUICK_FOLDS = (1,)
# Each augmentation: the parameters that switch it off.
OFF: dict[str, dict[str, Any]] = {
    "time shift": {"time_shift": False},
    "gain": {"gain_db": 0.0},
    "background mixing": {"background": 0.0},
    "SpecAugment frequency mask": {"freq_mask": 0},
    "SpecAugment time mask": {"time_mask": 0},
    "mixup": {"mixup": 0.0},
}
NONE = {k: v for off in OFF.values() for k, v in off.items()}
# Each augmentation switched on at its usual strength (the defaults before this
# measurement; the defaults now keep time shift only).
ALL_ON: dict[str, Any] = {"time_shift": True, "gain_db": 6.0, "background": 0.5,
                          "freq_mask": 8, "time_mask": 12, "mixup": 0.2}


def configs() -> list[tuple[str, str, dict[str, Any]]]:
    """(name, kind, params): all on, none, each off, each alone; every augmentation
    parameter explicit, the others at their defaults."""
    out: list[tuple[str, str, dict[str, Any]]] = [
        ("all six on", "reference", ALL_ON), ("no augmentation", "reference", NONE)]
    out += [(f"without {name}", "ablation", {**ALL_ON, **off}) for name, off in OFF.items()]
    out += [(f"only {name}", "alone", {**NONE, **{k: ALL_ON[k] for k in off}})
            for name, off in OFF.items()]
    return out


def measure(ctx: Context) -> dict[str, Any]:
    load_esc10(ctx.data_dir)
    folds = QUICK_FOLDS if ctx.quick else ABLATION_FOLDS
    chosen = configs()[:3] if ctx.quick else configs()
    results: dict[str, Any] = {name: {"kind": kind, "params": params, "folds": []}
                               for name, kind, params in chosen}
    for fold in folds:
        for name, _, params in chosen:
            found, _ = run_isolated(fit_fold, str(CACHE), "cnn", params, fold, threads=1,
                                    timeout_s=1800.0)
            results[name]["folds"].append({"fold": fold, **found})
    return {"folds": list(folds), "results": results}


def _mean(runs: list[dict[str, Any]], key: str) -> float:
    return float(np.mean([r[key] for r in runs]))


def table(measured: dict[str, Any]) -> Table:
    results = measured["results"]
    base = _mean(results["all six on"]["folds"], "accuracy")
    none = _mean(results["no augmentation"]["folds"], "accuracy")
    rows = []
    for name, found in results.items():
        runs = found["folds"]
        acc = _mean(runs, "accuracy")
        ref = {"ablation": base, "alone": none}.get(found["kind"])
        delta = "—" if ref is None else f"{acc - ref:+.3f}"
        rows.append([name, fmt(acc), " / ".join(fmt(r["accuracy"]) for r in runs), delta,
                     fmt(float(np.mean([100 * r["fit_s"] / r["train_clips"]
                                        for r in runs]))),
                     fmt(float(np.mean([r["epochs"] for r in runs])))])
    return Table(f"cnn augmentation ablation on ESC-10 (test folds "
                 f"{', '.join(map(str, measured['folds']))}; 80 test clips each)",
                 ["configuration", "mean clip accuracy", "per test fold",
                  "Δ (without: vs all on; only: vs none)", "training s per 100 clips",
                  "epochs"], rows)


TEXT = """
Each augmentation of the `cnn` classifier switched off on its own (*without X*, compared
with all six on at their usual strength: gain +-6 dB, time shift, background p 0.5, masks
8 bins / 12 frames, mixup 0.2 — the defaults when this was measured) and switched on alone
(*only X*, compared with no augmentation), every other parameter at its default
(validation_fraction 0). *Training s per 100 clips* follows the box's load at the time
more than the augmentation. ESC-10 from the data dir as in `esc10_cnn` (train on three
folds, test on the fourth; 1 s windows, a clip classified by the mean of its windows'
probabilities), on test folds {folds}. Each fit runs in a fresh process with one thread,
one after the other, folds in the outer loop; a run stopped for time is rebuilt from its
progress log (`python -m bench.esc10_ablation bench/out/esc10_progress.jsonl`) with the
folds every configuration finished. *only time shift* is today's default.

Reading it: one test fold is 80 clips, so one fold's accuracy has a standard error of about
0.045 and the mean over {n} folds about {se:.3f}; differences below about twice that are
within noise, and the one seed per fit adds its own spread.
"""


def section(measured: dict[str, Any]) -> Section:
    folds = measured["folds"]
    text = TEXT.format(folds=", ".join(map(str, folds)), n=len(folds),
                       se=0.045 / max(1, len(folds)) ** 0.5)
    return Section("esc10_ablation", "ESC-10: cnn augmentations one at a time", text,
                   [table(measured)], measured)


def run(ctx: Context) -> Section:
    return section(measure(ctx))


def from_progress(path: Path) -> dict[str, Any]:
    """The measurement rebuilt from the fits `fit_fold` logged (bench/out/
    esc10_progress.jsonl) of a run stopped early: the folds every configuration finished.
    A logged fit's augmentation is its parameters over ALL_ON, the defaults when the logged
    run was made (before this measurement)."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = [f for f in lines if f["kind"] == "cnn" and f["share"] == 1.0]
    chosen = configs()
    runs = {name: {f["fold"]: f for f in lines if {**ALL_ON, **f["params"]} == params}
            for name, _, params in chosen}
    folds = sorted(set.intersection(*(set(r) for r in runs.values())))
    results = {name: {"kind": kind, "params": params,
                      "folds": [runs[name][fold] for fold in folds]}
               for name, kind, params in chosen}
    return {"folds": folds, "results": results}


if __name__ == "__main__":  # python -m bench.esc10_ablation [progress.jsonl]
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT_DIR / "esc10_progress.jsonl"
    print(section(from_progress(source)).render(f"_Rebuilt from {source}._"))
