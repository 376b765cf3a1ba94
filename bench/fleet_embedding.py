"""The learned fleet embedding against logmel-v1 for anomaly detection (issue 15 item 3):
``python -m bench.run --only fleet_embedding``.

One fleet embedding (detectors.embedding_net.EmbeddingNet, the network the service trains
in service.fleet.train, 64-d) is trained on the *training* (normal) audio of every set of
bench.robustness together, as the service trains on every machine's stored audio: the
auxiliary label of each 1 s window is its set (machine/section) and condition. Per set,
the same registry detectors are then fitted on each embedding of that set's training
windows and score its test clips (loudness-normalised audio, as bench.robustness (c)/(d)):
per-set AUC/pAUC, logmel-v1 and fleet side by side, same run. Test clips never reach the
embedding's training. Offline (no database), the service's code on files.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import common
from bench.common import Section, Table, fmt
from bench.quality import ScoredRecording, evaluate_scores
from bench.robust_audio import NORMALISED, load_variant
from bench.robustness import Case, bldc_speed_cases, dcase2023_cases, dev_cases
from detectors import fleet_embedding, registry
from detectors.embedding_net import EmbeddingNet
from ingest.features import embed_windows

DETECTORS = ("ecod", "knn", "domain_nn")
FLEET_HOP_S = 0.5  # windows the fleet embedding learns from
TRAIN_HOP_S = 0.05  # as bench.robustness: overlapping detector training windows
EPOCHS = 15
MAX_FLEET_WINDOWS = 3000


def _cases(data_dir: Path, quick: bool) -> list[Case]:
    dev = [c for c in dev_cases(data_dir) if c.group != "DCASE2023"]
    cases = dev + dcase2023_cases(data_dir, few_shot=True) + \
        bldc_speed_cases(data_dir, with_target=True)
    return list({c.group: c for c in cases}.values()) if quick else cases


def _frames(clip: Any, hop_s: float, data_dir: Path) -> np.ndarray:
    y = load_variant(clip, NORMALISED, data_dir)
    return common.windows_at_hop(y, hop_s).astype(np.float32, copy=False)


def _fleet(cases: list[Case], data_dir: Path, epochs: int) -> tuple[Any, dict[str, Any]]:
    clips, labels, groups = [], [], []
    for case in cases:
        for k, (clip, condition) in enumerate(case.train):
            frames = _frames(clip, FLEET_HOP_S, data_dir)
            clips.append(frames)
            labels += [f"{case.name}/{condition}"] * len(frames)
            groups += [f"{case.name}/{k}"] * len(frames)
    X = np.concatenate(clips)
    pick = np.unique(np.linspace(0, len(X) - 1, min(MAX_FLEET_WINDOWS, len(X))).astype(int))
    started = time.perf_counter()
    net = EmbeddingNet(max_epochs=epochs, embedding_dim=fleet_embedding.FLEET_DIM,
                       width=fleet_embedding.FLEET_WIDTH, max_train_seconds=1800.0)
    net.fit(X[pick], np.asarray(labels)[pick], np.asarray(groups)[pick])
    info = {"windows": int(pick.size), "classes": len(set(labels)), "epochs": net.n_epochs_,
            "fit_s": time.perf_counter() - started}
    return fleet_embedding.embedder_of(net), info


def _embedders(module: Any) -> dict[str, Any]:
    return {"logmel-v1": embed_windows,
            "fleet": lambda w: fleet_embedding.embed(module, w)}


def _case_metrics(case: Case, embed: Any, data_dir: Path) -> dict[str, dict[str, float]]:
    parts = [(embed(_frames(c, TRAIN_HOP_S, data_dir)), cond)
             for c, cond in case.train]
    X = np.concatenate([p for p, _ in parts])
    conditions = np.concatenate([[cond] * len(p) for p, cond in parts])
    tests = [(c, bad, embed(_frames(c, 1.0, data_dir)))
             for c, bad in case.test]
    out = {}
    for name in DETECTORS:
        detector = registry.build(name, {}, None).fit(X, conditions=conditions)
        metrics = evaluate_scores([ScoredRecording(c.label, bad, detector.decision_function(v))
                                   for c, bad, v in tests])
        out[name] = {"auc": metrics.auc, "pauc": metrics.pauc}
    return out


def measure_child(data_dir_s: str, quick: bool) -> dict[str, Any]:
    data_dir = Path(data_dir_s)
    cases = _cases(data_dir, quick)
    module, info = _fleet(cases, data_dir, 3 if quick else EPOCHS)
    rows = []
    for case in cases:
        rows.append({"case": case.name, "group": case.group, "results": {
            kind: _case_metrics(case, embed, data_dir)
            for kind, embed in _embedders(module).items()}})
    return {"fleet": info, "rows": rows}


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def table(rows: list[dict[str, Any]]) -> Table:
    headers = ["set"] + [f"{kind} {d}" for d in DETECTORS for kind in ("logmel-v1", "fleet")]
    body = [[r["case"]] + [fmt(r["results"][kind][d]["auc"], 3) for d in DETECTORS
                           for kind in ("logmel-v1", "fleet")] for r in rows]
    for group in [*sorted({r["group"] for r in rows}), None]:
        chosen = [r for r in rows if group is None or r["group"] == group]
        body.append([f"**mean {group or 'all'}**"] + [
            fmt(_mean([r["results"][kind][d]["auc"] for r in chosen]), 3)
            for d in DETECTORS for kind in ("logmel-v1", "fleet")])
    return Table("AUC per set: logmel-v1 vs the fleet embedding, same detectors, same run",
                 headers, body)


def run(ctx: common.Context) -> Section:
    raw, _ = common.run_isolated(measure_child, str(ctx.data_dir), ctx.quick, threads=1,
                                 timeout_s=3600)
    fleet = raw["fleet"]
    return Section("fleet_embedding", "The learned fleet embedding (anomaly detection)",
                   TEXT.format(hop=FLEET_HOP_S, **{k: fmt(v, 1) if isinstance(v, float)
                                                   else v for k, v in fleet.items()}),
                   [table(raw["rows"])], raw)


TEXT = """
{__doc__}
Fleet embedding of this run: {windows} training windows (1 s, hop {hop} s) of {classes}
auxiliary classes (set/condition), {epochs} epochs, fitted in {fit_s} s on one thread.
DCASE 2023 sets get the first 3 s of their target-domain normal clip as condition 'target'
(few-shot, as bench.robustness (c)); the BLDC speed-shift sets one 1750 rpm clip.
AUC is over recordings where a set has enough test recordings per class, else over 1 s
windows (bench.quality's rule). The DCASE 2023 sets hold one normal and one
anomalous test clip each (2 train, 2 test clips per machine in the data dir): their AUCs
move in large steps; read the means, and treat them as a smoke test, not a ranking.
""".replace("{__doc__}", __doc__ or "")
