"""Detection quality when the plant is noisy and machines change condition (issue 15), and
false alerts per hour of normal audio under the default alert rule.

(a) the dev sets as recorded and loudness-normalised; (b) the same, mixed with ESC-10
background noise (:mod:`bench.robust_audio`); (c) DCASE 2023 source/target clips, with and
without a few seconds of target-domain normal audio; (d) BLDC speed shift (train on low
rpm, one high-rpm clip as the new condition, test on high rpm). Methods: today's best
registry detector on logmel-v1, each new method, the DCASE 2020 baseline AE, same audio,
same run. Offline (no database): the service's embedding and detector code on files.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench import common, robust_alerts
from bench.common import SR, Clip, Section, Table, fmt
from bench.dcase_baseline import dcase_baseline_scores
from bench.quality import ScoredRecording, build_sets, evaluate_scores
from bench.robust_audio import AS_RECORDED, NORMALISED, VARIANTS, Variant, load_variant
from detectors import registry
from ingest.features import embed, embed_windows

TRAIN_HOP_S = 0.05  # as bench.quality: overlapping training windows of short clips
TARGET_SHOT_S = 3.0  # DCASE 2023: seconds of the target normal clip given as "new normal"
BASELINE = "DCASE 2020 baseline AE"
TODAY = "ecod"  # best mean AUC on logmel-v1 in the quality section before this work
DETECTORS = (TODAY, "domain_nn", "domain_mahalanobis")
GROUP_OF = {"BLDC": "BLDC", "DCASE2023": "DCASE2023", "MIMII": "MIMII"}


@dataclass(frozen=True)
class Case:
    """One machine's training audio (``train``: clip, condition) and labelled test clips."""

    name: str
    group: str
    train: tuple[tuple[Clip, str], ...]
    test: tuple[tuple[Clip, bool], ...]
    notes: dict[str, Any] = field(default_factory=dict)


def _windows(y: np.ndarray, hop_s: float) -> np.ndarray:
    return embed_windows(common.windows_at_hop(y, hop_s))


def _fit_detector(name: str, case: Case, variant: Variant, data_dir: Path) -> Any:
    parts = [(_windows(load_variant(c, variant, data_dir), TRAIN_HOP_S), cond)
             for c, cond in case.train]
    X = np.concatenate([w for w, _ in parts])
    conditions = np.concatenate([[cond] * w.shape[0] for w, cond in parts])
    return registry.build(name, {}, None).fit(X, conditions=conditions)


def _detector_metrics(name: str, case: Case, variant: Variant, data_dir: Path) -> dict:
    start = time.perf_counter()
    detector = _fit_detector(name, case, variant, data_dir)
    scored = [ScoredRecording(c.label, bad, detector.decision_function(
        embed(load_variant(c, variant, data_dir), SR))) for c, bad in case.test]
    metrics = evaluate_scores(scored)
    return {"auc": metrics.auc, "pauc": metrics.pauc, "level": metrics.level,
            "seconds": time.perf_counter() - start}


def _baseline_metrics(case: Case, variant: Variant, data_dir: Path) -> dict:
    start = time.perf_counter()
    train = [load_variant(c, variant, data_dir) for c, _ in case.train]
    tests = [load_variant(c, variant, data_dir) for c, _ in case.test]
    scores, _ = dcase_baseline_scores(train, tests, data_dir)
    scored = [ScoredRecording(c.label, bad, s.window_errors, s.frame_errors)
              for (c, bad), s in zip(case.test, scores, strict=True)]
    metrics = evaluate_scores(scored)
    return {"auc": metrics.auc, "pauc": metrics.pauc, "level": metrics.level,
            "seconds": time.perf_counter() - start}


def evaluate_case(case: Case, variant: Variant, data_dir: Path) -> dict:
    results = {name: _detector_metrics(name, case, variant, data_dir) for name in DETECTORS}
    results[BASELINE] = _baseline_metrics(case, variant, data_dir)
    return {"case": case.name, "group": case.group, "variant": variant.name,
            "results": results, "notes": case.notes}


# --- the sets -----------------------------------------------------------------------------


# MIMII has 4 ids per machine type with near-identical results in the quality section; one
# id per type keeps this benchmark (5 audio variants x the baseline AE) within minutes.
MIMII_IDS = ("id_00",)
MAX_TRAIN_RECORDINGS = 10


def dev_cases(data_dir: Path) -> list[Case]:
    """(a)/(b): bench.quality's sets (one condition: everything is source)."""
    sets, _ = build_sets(data_dir)
    # The DCASE 2020 machine with 75 recordings is the false-alert set (bench.robust_alerts):
    # its 12 min of training audio would take the baseline AE minutes per audio variant.
    sets = [s for s in sets if (s.group != "MIMII" or s.name.endswith(MIMII_IDS))
            and len(s.train) <= MAX_TRAIN_RECORDINGS]
    return [Case(s.name, s.group, tuple((c, "source") for c in s.train), s.test) for s in sets]


def dcase2023_cases(data_dir: Path, few_shot: bool) -> list[Case]:
    """(c): DCASE 2023 sets; with ``few_shot`` the first :data:`TARGET_SHOT_S` s of the
    target-domain normal test clip (where there is one) are training audio of condition
    'target' and only the rest of that clip is tested."""
    cases = []
    for case in dev_cases(data_dir):
        if case.group != "DCASE2023":
            continue
        domains = {c.label: ("target" if "_target_" in c.path else "source")
                   for c, _ in case.test}
        target = next((c for c, bad in case.test if not bad and "_target_" in c.path), None)
        notes = {"domains": {("anomaly" if bad else "normal"): domains[c.label]
                             for c, bad in case.test}, "few_shot": False}
        if few_shot and target is not None:
            shot = replace(target, end_s=TARGET_SHOT_S)
            test = tuple((replace(c, start_s=TARGET_SHOT_S) if c == target else c, bad)
                         for c, bad in case.test)
            case = replace(case, train=(*case.train, (shot, "target")), test=test)
            notes["few_shot"] = True
        cases.append(replace(case, notes=notes))
    return cases


LOW_RPM = (1400, 1450, 1550, 1650)
TARGET_RPM = 1750
HIGH_RPM = (1850, 1950, 2000)


def bldc_speed_cases(data_dir: Path, with_target: bool) -> list[Case]:
    """(d): per motor, healthy low-rpm recordings (+ the healthy 1750 rpm clip as the new
    condition) for training; healthy and propeller-fault recordings at >= 1750 rpm tested."""
    def path(condition: str, motor: str, rpm: int) -> str:
        return f"bldc/bldc_motor__{condition}_{motor}_{rpm}rpm.wav"

    present = {r["path"] for r in common.read_manifest(data_dir)}
    cases = []
    for motor in ("M1", "M2"):
        train = [(Clip(path("healthy", motor, rpm)), "low") for rpm in LOW_RPM]
        if with_target:
            train.append((Clip(path("healthy", motor, TARGET_RPM)), "high"))
        test = [(Clip(path("healthy", motor, rpm)), False) for rpm in HIGH_RPM]
        test += [(Clip(p), True) for rpm in (TARGET_RPM, *HIGH_RPM)
                 if (p := path("propeller", motor, rpm)) in present]
        cases.append(Case(f"BLDC {motor} speed shift", "BLDC", tuple(train), tuple(test),
                          {"with_target": with_target}))
    return cases


def measure_child(data_dir_s: str, quick: bool) -> dict:
    data_dir = Path(data_dir_s)
    dev = dev_cases(data_dir)
    if quick:
        dev = list({c.group: c for c in reversed(dev)}.values())
    out: dict[str, Any] = {"dev": [evaluate_case(c, v, data_dir) for v in VARIANTS for c in dev]}
    out["dcase2023"] = [evaluate_case(c, NORMALISED, data_dir) for few in (False, True)
                        for c in dcase2023_cases(data_dir, few)]
    out["speed"] = [evaluate_case(c, NORMALISED, data_dir) for with_target in (False, True)
                    for c in bldc_speed_cases(data_dir, with_target)]
    out["alerts"] = robust_alerts.false_alerts(data_dir)
    return out


# --- report -------------------------------------------------------------------------------

METHODS = (*DETECTORS, BASELINE)


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _values(rows: list[dict], method: str, key: str,
            keep: Callable[[dict], bool] = lambda r: True) -> list[float]:
    return [r["results"][method][key] for r in rows if keep(r)]


def variant_table(rows: list[dict]) -> Table:
    """(a)/(b): mean AUC / pAUC per variant and group, per method."""
    groups = sorted({r["group"] for r in rows})
    out = []
    for variant in [v.name for v in VARIANTS]:
        these = [r for r in rows if r["variant"] == variant]
        for method in METHODS:
            cells = [fmt(_mean(_values([r for r in these if r["group"] == g], method, "auc")))
                     for g in groups]
            today = _mean(_values(these, TODAY, "auc")) or 0.0
            mean = _mean(_values(these, method, "auc")) or 0.0
            out.append([variant, method, fmt(mean), fmt(_mean(_values(these, method, "pauc"))),
                        *cells, "reference" if method == TODAY else f"{mean - today:+.3f}"])
    return Table("(a) clean and (b) noisy: mean AUC over sets (pAUC: max FPR 0.1)",
                 ["audio", "method", "mean AUC", "mean pAUC", *[f"{g} AUC" for g in groups],
                  f"Δ mean AUC vs {TODAY} (same run)"], out)


def case_table(title: str, rows: list[dict], label: Callable[[dict], str]) -> Table:
    out = []
    for r in rows:
        cells = [f"{fmt(r['results'][m]['auc'])} / {fmt(r['results'][m]['pauc'])}"
                 for m in METHODS]
        out.append([r["case"], label(r), r["results"][TODAY]["level"], *cells])
    means = [fmt(_mean(_values(rows, m, "auc"))) for m in METHODS]
    out.append(["**mean AUC**", "", "", *means])
    return Table(title, ["set", "setting", "level", *[f"{m} AUC / pAUC" for m in METHODS]], out)


def growth_table(rows: list[dict]) -> Table:
    by_group: dict[str, list[dict]] = {}
    for r in rows:
        if r["variant"] == AS_RECORDED.name:
            by_group.setdefault(r["group"], []).append(r)
    out = []
    for group, these in sorted(by_group.items()):
        out.append([group, str(len(these)),
                    *[fmt(statistics.median(_values(these, m, "seconds"))) for m in METHODS]])
    return Table("Cost: median seconds to fit and score one set (as recorded), by set size "
                 "(MIMII 5 s, DCASE2023 20-24 s, BLDC ~40 s of training audio)",
                 ["sets", "n", *METHODS], out)


def run(ctx: common.Context) -> Section:
    raw, _ = common.run_isolated(measure_child, str(ctx.data_dir), ctx.quick, threads=1,
                                 timeout_s=3600)
    tables = [variant_table(raw["dev"]),
              case_table("(c) DCASE 2023 source/target (loudness-normalised), per window",
                         raw["dcase2023"], _domain_label),
              case_table("(d) BLDC speed shift (loudness-normalised)", raw["speed"],
                         _speed_label),
              robust_alerts.table(raw["alerts"]), growth_table(raw["dev"])]
    return Section("robustness", "Robustness: noise, operating conditions, false alerts",
                   TEXT.format(shot=TARGET_SHOT_S, today=TODAY, **robust_alerts.describe()),
                   tables, raw)


def _speed_label(r: dict) -> str:
    return "+ one 1750 rpm clip" if r["notes"]["with_target"] else "low rpm only"


def _domain_label(r: dict) -> str:
    domains = r["notes"]["domains"]
    few = f" + {TARGET_SHOT_S:g} s target" if r["notes"]["few_shot"] else " source only"
    return f"normal {domains['normal']}, anomaly {domains['anomaly']};{few}"


TEXT = """
**Audio.** *(a)* the dev sets of the quality section (BLDC M1/M2 per recording; DCASE 2020
pump id_06, DCASE 2023 section 00 and MIMII 0 dB id_00 of each machine type per window), as
recorded and loudness-normalised. *(b)* the same recordings, every one first brought to -26
LUFS integrated loudness (ITU-R BS.1770-4, pyloudnorm) so that level alone gives nothing
away, then mixed with ESC-10 background noise (rain, sea waves, chainsaw, helicopter,
crackling fire): one class per recording, its clips back to back, drawn from a seed of the
recording's path, so training and test recordings carry different noise; at a fixed level
(-36 LUFS, whatever the recording) and at 0 dB and -6 dB SNR (RMS). *(c)* DCASE 2023: the 2
source-domain training clips per machine type; the test clips are partly target domain
(other operating conditions). "+ {shot:g} s target": the first {shot:g} s of the target-
domain normal test clip (where there is one) are given as training audio of a second
condition ("new normal"), and only the rest of that clip is tested; these seconds come from
the very recording that is then tested, so that setting is optimistic, and DCASE 2023's real
target training clips are not in the data dir. *(d)* BLDC speed shift: per motor, train on
healthy 1400-1650 rpm (condition "low"), optionally plus the healthy 1750 rpm clip
(condition "high"); test healthy 1850-2000 rpm against the propeller fault at 1750-2000 rpm.

**Methods** (same audio, same run): *{today}*, the best mean AUC on logmel-v1 in the quality
section before this work, *domain_nn* (`detectors/domain.py`: k-means centres of the main
condition plus every window of other conditions, distance to the nearest scaled per
condition) and *domain_mahalanobis* (`detectors/domain_gaussian.py`: per-condition mean and
covariance, the main condition's Ledoit-Wolf, the others' shrunk towards it, smallest
distance scaled per condition), all on logmel-v1 with default parameters, trained on windows
every 0.05 s and scored on the 1 s windows the service stores; the DCASE 2020 baseline AE as
published (`bench/dcase_baseline.py`, 100 epochs). Detectors get the conditions (the AE and
{today} just see the windows). AUC per set as in the quality section (per recording with >=
3 recordings per class, else per window); pAUC McClish-standardised, max FPR 0.1.

**Pooled features tried and not adopted** (exploratory run on the same mixtures before this
benchmark, not repeated here): per-window mean-removed log-mel, Global Weighted Ranking
Pooling of log-mel frames (r = 0.95, 0.5, plus the quietest frames), and band contrast
against a median-smoothed spectrum, each with ECOD, kNN and nearest k-means centre: none
beat logmel-v1 under noise (at 0 dB SNR 0.57-0.71 mean AUC against logmel-v1's 0.67-0.76),
so logmel-v1 stays the recommended embedding. GWRP pooling has since become a selectable
kind, `logmel-gwrp-v1`, measured with every detector in the robust_features section.

**False alerts**: DCASE 2020 machine id_00 (75 normal 10 s recordings): train on the first
7, 20 or 40, score the last {n_test} back to back through the service's alert engine with
the default rule ({rule} windows), count alerts; the anomalous recording is played last.
Threshold calibrated on held-out *windows* (blocks, as before this work) or on *whole
recordings* (every recording scored by a model fitted without it, threshold at least the
level normal recordings reach given their spread; `detectors/calibration.py`).

The sets are tiny: the DCASE 2023 per-window AUCs rest on one clip per class and move in
large steps; read them as "holds / fails", not as a ranking.

**Goal** (issue 15): on (b) and (c) the recommended pair beats logmel-v1 + ecod by >= 0.10
mean AUC and scores above 0.5 on every DCASE 2023 set, with no loss on the clean sets.
On DCASE 2023 bearing and gearbox every detector here calls the normal source-domain test
clip more anomalous than the anomalous target-domain one, and none reaches 0.5 on either:
that normal clip's operating point lies outside the two training clips' (gearbox load wt
150 against 0 and 50, bearing velocity 9 against 16 and 21), farther from them than the
anomalous clip is (the robust_features section places every clip). Two training clips do
not cover a source domain that DCASE 2023 trains on 990 clips of.
"""
