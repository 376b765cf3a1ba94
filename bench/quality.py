"""Detection quality on real audio (offline): every registry algorithm on logmel-v1 windows
against the DCASE 2020 Task 2 baseline autoencoder, recording- or window-level AUC/pAUC.

Reusable by the through-the-API benchmark: :func:`build_sets` (what to train on and what to
score), :func:`evaluate_scores` (metrics from scored recordings) and
:func:`bench.dcase_baseline.dcase_baseline_scores` (the reference's scores).
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from bench import common
from bench.common import DATA_DIR, Clip, Section, Table, fmt, load_16k
from bench.dcase_baseline import dcase_baseline_scores
from detectors import registry
from ingest.features import embed

MAX_FPR = 0.1
# With fewer recordings of a class, a recording-level AUC moves in steps of 1/n and
# says little; the windows of the recordings are then the units instead.
MIN_RECORDINGS_PER_CLASS = 3
# Overlapping training windows (each still a logmel-v1 window) give a 5 s normal clip
# 81 windows, enough for every detector's 50-window minimum.
TRAIN_HOP_S = 0.05
BASELINE = "DCASE 2020 baseline AE"
# 100 epochs of a few clips are only 100-300 optimiser steps, where the baseline's training
# loss is still falling steeply; around 1000 steps it has flattened on these sets.
LONG_STEPS = 1000
BASELINE_LONG = f"baseline AE, >= {LONG_STEPS} steps"
BASELINES = {BASELINE: 0, BASELINE_LONG: LONG_STEPS}
GROUPS = {"bldc": "BLDC", "dcase2023": "DCASE2023", "mimii": "MIMII"}


@dataclass(frozen=True)
class EvalSet:
    """One machine: normal training audio and labelled test audio (``True`` = anomalous)."""

    name: str
    group: str
    train: tuple[Clip, ...]
    test: tuple[tuple[Clip, bool], ...]


@dataclass(frozen=True)
class ScoredRecording:
    """Scores of one test recording. ``frame_scores`` (finer units, e.g. the baseline's
    5-frame vectors) give the recording score when set; otherwise ``window_scores`` do."""

    name: str
    is_anomaly: bool
    window_scores: np.ndarray
    frame_scores: np.ndarray | None = None

    @property
    def units(self) -> np.ndarray:
        return self.window_scores if self.frame_scores is None else self.frame_scores


@dataclass(frozen=True)
class Metrics:
    """``level`` "recording": recording score = mean (``auc``) or max (``auc_max``) of its
    scores; ``level`` "window": every 1 s window is a sample, counts are windows."""

    level: str
    n_normal: int
    n_anomaly: int
    auc: float
    pauc: float
    auc_max: float | None = None
    pauc_max: float | None = None


def auc_pauc(is_anomaly: Sequence[bool], scores: Sequence[float]) -> tuple[float, float]:
    """ROC AUC and pAUC up to FPR 0.1, McClish-standardised (sklearn ``max_fpr``)."""
    labels, values = np.asarray(is_anomaly, dtype=bool), np.asarray(scores, dtype=np.float64)
    return (float(roc_auc_score(labels, values)),
            float(roc_auc_score(labels, values, max_fpr=MAX_FPR)))


def evaluate_scores(recordings: Sequence[ScoredRecording]) -> Metrics:
    """Recording-level metrics when each class has >= 3 recordings, else window-level."""
    labels = [r.is_anomaly for r in recordings]
    n_anomaly = sum(labels)
    n_normal = len(labels) - n_anomaly
    if n_anomaly == 0 or n_normal == 0:
        raise ValueError(f"need normal and anomalous recordings, got {n_normal} normal "
                         f"and {n_anomaly} anomalous")
    if min(n_normal, n_anomaly) >= MIN_RECORDINGS_PER_CLASS:
        auc, pauc = auc_pauc(labels, [float(r.units.mean()) for r in recordings])
        auc_max, pauc_max = auc_pauc(labels, [float(r.units.max()) for r in recordings])
        return Metrics("recording", n_normal, n_anomaly, auc, pauc, auc_max, pauc_max)
    window_labels = np.concatenate(
        [np.full(r.window_scores.size, r.is_anomaly) for r in recordings]
    )
    auc, pauc = auc_pauc(window_labels, np.concatenate([r.window_scores for r in recordings]))
    n_bad = int(window_labels.sum())
    return Metrics("window", window_labels.size - n_bad, n_bad, auc, pauc)


def _split_single_normal(test: list[tuple[Clip, bool]], seconds: dict[str, float]) -> tuple[
        list[Clip], list[tuple[Clip, bool]]]:
    # No separate training audio (MIMII): train on the first half of the normal clip and
    # keep its second half as the normal test recording.
    first = next(clip for clip, bad in test if not bad)
    half = seconds[first.path] / 2
    rest = [(c, bad) for c, bad in test if c != first]
    return [replace(first, end_s=half)], [(replace(first, start_s=half), False), *rest]


def build_sets(data_dir: Path = DATA_DIR) -> tuple[list[EvalSet], list[tuple[str, str]]]:
    """One set per (dataset, machine type, machine id); returns (sets, [(skipped, why)])."""
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for row in common.read_manifest(data_dir):
        if row["label"] in ("normal", "anomaly"):
            groups[(row["path"].split("/")[0], row["machine_type"], row["machine_id"])].append(row)
    sets, skipped = [], []
    for (folder, machine, machine_id), rows in groups.items():
        name = f"{GROUPS.get(folder, folder)} {machine} {machine_id}"
        train = [Clip(r["path"]) for r in rows if r["split"] == "train" and r["label"] == "normal"]
        test = [(Clip(r["path"]), r["label"] == "anomaly") for r in rows if r["split"] == "test"]
        kinds = {bad for _, bad in test}
        if kinds != {False, True}:
            skipped.append((name, "test recordings are all " + ("anomalous" if True in kinds
                                                                   else "normal")))
            continue
        if not train:
            seconds = {r["path"]: float(r["duration_s"]) for r in rows}
            train, test = _split_single_normal(test, seconds)
        sets.append(EvalSet(name, GROUPS.get(folder, folder), tuple(train), tuple(test)))
    return sets, skipped


def _detector_result(name: str, train: np.ndarray, tests: list[tuple[Clip, bool, Any]]) -> dict:
    start = time.perf_counter()
    detector = registry.build(name, {}, None).fit(train)
    scored = [ScoredRecording(clip.label, bad, detector.decision_function(windows))
              for clip, bad, windows in tests]
    return {"metrics": asdict(evaluate_scores(scored)), "seconds": time.perf_counter() - start}


def _baseline_result(eval_set: EvalSet, data_dir: Path, min_steps: int) -> dict:
    start = time.perf_counter()
    scores, info = dcase_baseline_scores(eval_set.train, [c for c, _ in eval_set.test], data_dir,
                                         min_steps=min_steps)
    scored = [ScoredRecording(clip.label, bad, s.window_errors, s.frame_errors)
              for (clip, bad), s in zip(eval_set.test, scores, strict=True)]
    return {"metrics": asdict(evaluate_scores(scored)), "seconds": time.perf_counter() - start,
            "training": asdict(info)}


def evaluate_set(eval_set: EvalSet, data_dir: Path = DATA_DIR) -> dict:
    """Every registry algorithm and the baselines on one set: metrics and seconds. The long
    baseline runs on recording-level sets only: it is the slowest thing here by far."""
    train = np.concatenate([common.logmel_at_hop(c, TRAIN_HOP_S, data_dir) for c in eval_set.train])
    tests = [(clip, bad, embed(load_16k(clip, data_dir), common.SR)) for clip, bad in eval_set.test]
    results = {name: _detector_result(name, train, tests) for name in registry.ALGORITHMS}
    n_anomaly = sum(bad for _, bad in eval_set.test)
    per_recording = min(n_anomaly, len(eval_set.test) - n_anomaly) >= MIN_RECORDINGS_PER_CLASS
    for name, min_steps in BASELINES.items():
        if per_recording or not min_steps:
            results[name] = _baseline_result(eval_set, data_dir, min_steps)
    train_s = sum(load_16k(clip, data_dir).shape[0] for clip in eval_set.train) / common.SR
    return {"set": eval_set.name, "group": eval_set.group, "train_seconds": train_s,
            "train_windows": int(train.shape[0]), "results": results}


def measure_child(data_dir: str, quick: bool) -> dict:
    sets, skipped = build_sets(Path(data_dir))
    if quick:  # one set of each group
        sets = list({s.group: s for s in reversed(sets)}.values())
    return {"sets": [evaluate_set(s, Path(data_dir)) for s in sets], "skipped": skipped}


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _aucs(per_set: list[dict], method: str, group: str | None = None, key: str = "auc",
          like: str | None = None) -> list[float]:
    """``key`` of ``method`` over the sets it ran on (and ``like`` ran on, if given)."""
    return [s["results"][method]["metrics"][key] for s in per_set
            if method in s["results"] and (like is None or like in s["results"])
            and (group is None or s["group"] == group)
            and s["results"][method]["metrics"][key] is not None]


def _best(per_set: list[dict], methods: list[str]) -> str:
    """The methods (ties included) with the best mean AUC among those run on every set."""
    complete = [m for m in methods if per_set and all(m in s["results"] for s in per_set)]
    means = {m: _mean(_aucs(per_set, m)) or 0.0 for m in complete}
    top = max(means.values(), default=0.0)
    return ", ".join(m for m in complete if means[m] >= top - 5e-4) or "—"


def summary_table(per_set: list[dict], methods: list[str]) -> tuple[Table, str]:
    groups = sorted({s["group"] for s in per_set})
    best = [max(r["metrics"]["auc"] for r in s["results"].values()) for s in per_set]
    means = {m: _mean(_aucs(per_set, m)) or 0.0 for m in methods}
    rows = []
    for m in methods:
        ran = [(s, b) for s, b in zip(per_set, best) if m in s["results"]]  # noqa: B905
        wins = sum(s["results"][m]["metrics"]["auc"] >= b for s, b in ran)
        reference = _mean(_aucs(per_set, BASELINE, like=m)) or 0.0  # on the same sets
        rows.append([m, f"{fmt(means[m])} ({len(ran)})", fmt(_mean(_aucs(per_set, m, key="pauc"))),
                     *[fmt(_mean(_aucs(per_set, m, g))) for g in groups],
                     fmt(_mean(_aucs(per_set, m, key="auc_max"))), f"{wins}/{len(ran)}",
                     "reference" if m == BASELINE else f"{means[m] - reference:+.3f}",
                     "—" if m == BASELINE else common.check(means[m] >= reference)])
    winner = f"{_best(per_set, methods)} over all sets; " + _best(
        [s for s in per_set if s["results"][BASELINE]["metrics"]["level"] == "recording"],
        methods) + " over the per-recording sets"
    headers = ["method", "mean AUC (sets)", "mean pAUC", *[f"{g} AUC" for g in groups],
               "mean AUC, max-aggregated (recording sets)", "sets won (ties count)",
               "Δ mean AUC vs baseline (same sets)", "≥ baseline"]
    return Table("Per-method summary (mean over sets)", headers, rows), winner


def detail_table(per_set: list[dict], methods: list[str]) -> Table:
    rows = []
    for s in per_set:
        first = s["results"][methods[0]]["metrics"]
        unit = "recordings" if first["level"] == "recording" else "windows"
        metrics = [s["results"].get(m, {}).get("metrics") for m in methods]
        cells = [f"{fmt(m['auc'])} / {fmt(m['pauc'])}" if m else "—" for m in metrics]
        rows.append([s["set"], first["level"], f"{first['n_normal']} / {first['n_anomaly']} {unit}",
                     f"{s['train_seconds']:.0f} s ({s['train_windows']})", *cells])
    return Table("AUC / pAUC per set (pAUC: max FPR 0.1, McClish-standardised)",
                 ["set", "level", "normal / anomalous", "training audio (windows)", *methods],
                 rows)


def growth_table(per_set: list[dict], methods: list[str]) -> Table:
    by_group: dict[str, list[dict]] = defaultdict(list)
    for s in per_set:
        by_group[s["group"]].append(s)
    rows = []
    for sets in sorted(by_group.values(), key=lambda sets: sets[0]["train_seconds"]):
        seconds = [[x["results"][m]["seconds"] for x in sets if m in x["results"]]
                   for m in methods]
        rows.append([sets[0]["group"], fmt(statistics.median(x["train_seconds"] for x in sets)),
                     str(len(sets)), *[fmt(statistics.median(t)) if t else "—" for t in seconds]])
    return Table("Growth: median seconds to fit and score one set, by training audio length",
                 ["sets", "training audio s", "n", *methods], rows)


TEXT = """
**Sets** (`manifest.csv`, one per machine = dataset + machine type + id): *BLDC M1, M2*
train on the 4 `train`/`normal` recordings (~40 s), test on 4 normal and 6 (M1) or 8 (M2)
propeller-fault recordings, scored per recording. *DCASE2023* (section 00 per machine
type) train on the 2 `train` clips (20-24 s), test on 1 normal + 1 anomalous clip, scored
per window. *MIMII* (0 dB, per type + id) has one normal and one abnormal 10 s clip and no
training audio: training uses the first 5 s of the normal clip; its last 5 s and the
abnormal clip are the test recordings, scored per window. Skipped (no AUC possible):
{skipped}.

**Detectors**: every `detectors.registry` algorithm with default parameters, trained on
logmel-v1 windows of the training audio taken every {hop} s (overlapping: at a 1 s hop a
5 s clip gives 5 windows, under the detectors' 50-window minimum), scored on the 1 s-hop
windows of each test recording, as the service embeds an upload.

**Metrics**: scikit-learn `roc_auc_score`, anomalous = positive; pAUC is
`roc_auc_score(max_fpr=0.1)`, i.e. **McClish-standardised** (0.5 = chance; the DCASE 2020
baseline's evaluation made the same call). Sets with >= {min_rec} normal and >= {min_rec}
anomalous test recordings are scored **per recording** (mean of its window scores; the max
is shown too), others **per window** (each 1 s window is a sample).

**Reference, same run, same audio**: the DCASE 2020 Task 2 baseline autoencoder
(`bench/dcase_baseline.py`, a PyTorch port of the published Keras model: 128-band log-mel,
5 stacked frames = 640 inputs, Dense 128 (x4) → 8 → 128 (x4) with BatchNorm + ReLU,
Adam 0.001, MSE, batch 512; clip score = mean reconstruction error over its vectors,
window score = mean over the vectors centred in that window). *{baseline}*: the published
100 epochs, here only {short}; far from fitted, so this column is the recipe, not the
model's ability. *{baseline_long}*: epochs added up to {long_steps} optimiser steps, where
its loss has flattened, on the per-recording sets only (10-25 s per set): {long}.

The sets are tiny: differences of a few hundredths are noise, window-level AUCs rest on one
clip per class, and DCASE2023 test clips are partly target-domain (other operating
conditions than the source-domain training clips), so a normal clip can look more unusual
than an anomalous one (AUC < 0.5). **Best mean AUC: {winner}.** The number after each
mean counts its sets; Δ compares with the published recipe on the same sets.
"""


def training_summary(per_set: list[dict], method: str) -> str:
    infos = [s["results"][method]["training"] for s in per_set if method in s["results"]]
    steps, losses = [i["steps"] for i in infos], [i["final_loss"] for i in infos]
    capped = sum(i["epochs_run"] < i["epochs_planned"] for i in infos)
    return (f"{min(steps)}-{max(steps)} optimiser steps, final training MSE "
            f"{fmt(min(losses))}-{fmt(max(losses))} (squared dB), stopped by the time cap "
            f"in {capped} of {len(infos)} sets")


def run(ctx: common.Context) -> Section:
    raw, _ = common.run_isolated(measure_child, str(ctx.data_dir), ctx.quick, threads=1)
    per_set = raw["sets"]
    methods = [*BASELINES, *registry.ALGORITHMS]
    summary, winner = summary_table(per_set, methods)
    skipped = "; ".join(f"{name} ({why})" for name, why in raw["skipped"]) or "none"
    text = TEXT.format(
        skipped=skipped, hop=TRAIN_HOP_S, min_rec=MIN_RECORDINGS_PER_CLASS, winner=winner,
        baseline=BASELINE, baseline_long=BASELINE_LONG, long_steps=LONG_STEPS,
        short=training_summary(per_set, BASELINE), long=training_summary(per_set, BASELINE_LONG),
    )
    tables = [summary, detail_table(per_set, methods), growth_table(per_set, methods)]
    return Section("quality", "Detection quality on real audio (offline)", text, tables, raw)
