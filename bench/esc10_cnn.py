"""ESC-10 with the `cnn` classifier (issue 14): clip accuracy cross-validated by fold
(folds 1-4 of the data dir; train on three, test on the fourth), for the CNN with and
without augmentation, the transfer options on a self-trained embedding network, and the
statistical classifiers on logmel-v1 windows as the same-run reference; training seconds
per 100 clips on one core, and how CNN training time grows with the training set.

Every model sees what the service gives it: 1 s windows of 16 kHz mono audio (5 per clip,
the clip zero-padded to 5 s as ESC-10 ships it). A clip's class is the argmax of the mean
window probability. Windows of digital silence (ESC-10's padding) are left out of
training for every model alike: they carry no class.
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import (
    OUT_DIR,
    Context,
    Section,
    Table,
    fmt,
    load_16k,
    read_manifest,
    run_isolated,
)

SR = 16_000
CLIP_S = 5
FOLDS = (1, 2, 3, 4)
QUICK_FOLDS = (1,)
CACHE = OUT_DIR / "esc10_16k.npz"
SILENT_RMS = 1e-4  # digital silence: ESC-10 pads short clips with zeros
NO_AUGMENT = {"gain_db": 0.0, "time_shift": False, "background": 0.0, "freq_mask": 0,
              "time_mask": 0, "mixup": 0.0}
# Pretraining of the embedding network: the auxiliary label is the recording a window
# comes from (needs no annotation), on every recording held, as the service would.
PRETRAIN: dict[str, Any] = {"max_epochs": 30, "patience": 5}
EMBEDDING = OUT_DIR / "esc10_embedding.pkl"
STATISTICAL = ("logreg", "random_forest", "mlp")
GROWTH_SHARES = (0.25, 0.5, 1.0)


def load_esc10(data_dir: Path) -> dict[str, np.ndarray]:
    """Clips (n, 5 s) at 16 kHz, labels and folds; cached under bench/out."""
    if CACHE.exists():
        with np.load(CACHE) as found:
            return {k: found[k] for k in found.files}
    rows = [r for r in read_manifest(data_dir) if r["path"].startswith("esc10/")]
    clips = [np.pad(a, (0, max(0, CLIP_S * SR - a.size)))[:CLIP_S * SR]
             for a in (load_16k(r["path"], data_dir) for r in rows)]
    data = {"clips": np.stack(clips).astype(np.float32),
            "labels": np.array([r["label"] for r in rows]),
            "folds": np.array([int(Path(r["path"]).name.split("__")[2][0]) for r in rows])}
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE, **data)  # type: ignore[arg-type]  # numpy stubs: savez(file, *args)
    return data


def windows(data: dict[str, np.ndarray], rows: np.ndarray, drop_silent: bool
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1 s windows of the clips `rows`: (windows, labels, clip index of each)."""
    x = data["clips"][rows].reshape(-1, SR)
    y, g = np.repeat(data["labels"][rows], CLIP_S), np.repeat(rows, CLIP_S)
    if drop_silent:
        keep = np.sqrt((x.astype(np.float64) ** 2).mean(axis=1)) > SILENT_RMS
        x, y, g = x[keep], y[keep], g[keep]
    return x, y, g


def pretrain(data_path: str, out_path: str) -> dict[str, Any]:
    """The embedding network on every window of every clip, each clip its own class
    (no labels used); pickled for the transfer rows. Returns its training seconds."""
    import torch

    from detectors.embedding_net import EmbeddingNet

    torch.set_num_threads(1)
    with np.load(data_path) as found:
        data = {k: found[k] for k in found.files}
    x, _, g = windows(data, np.arange(data["labels"].size), drop_silent=True)
    started = time.perf_counter()
    net = EmbeddingNet(**PRETRAIN).fit(x, g.astype(str))
    fit_s = time.perf_counter() - started
    Path(out_path).write_bytes(pickle.dumps(net))
    return {"fit_s": fit_s, "clips": int(data["labels"].size), "windows": len(x),
            "epochs": net.n_epochs_}


def _model(kind: str, params: dict[str, Any]) -> Any:
    from detectors import classifiers
    from detectors.cnn import CNNClassifier
    from detectors.embedding_net import LinearOnEmbedding

    if kind == "cnn":
        return CNNClassifier(**params)
    if kind not in ("embedding_linear", "finetune"):
        return classifiers.build(kind, params)
    embedding = pickle.loads(EMBEDDING.read_bytes())  # written by pretrain() in this run
    if kind == "embedding_linear":
        return LinearOnEmbedding(embedding)
    return CNNClassifier(pretrained=embedding, **params)


def fit_fold(data_path: str, kind: str, params: dict[str, Any], test_fold: int,
             share: float = 1.0) -> dict[str, Any]:
    """Train on the other folds (a random `share` of their clips), test on one: clip
    accuracy and training seconds (the transfer rows: after pretraining)."""
    import torch

    from ingest.features import embed_windows

    torch.set_num_threads(1)
    with np.load(data_path) as found:
        data = {k: found[k] for k in found.files}
    train_rows = np.flatnonzero(data["folds"] != test_fold)
    train_rows = train_rows[np.random.default_rng(0).permutation(train_rows.size)]
    train_rows = np.sort(train_rows[: round(share * train_rows.size)])
    test_rows = np.flatnonzero(data["folds"] == test_fold)
    x, y, g = windows(data, train_rows, drop_silent=True)
    x_test, _, _ = windows(data, test_rows, drop_silent=False)
    audio = kind in ("cnn", "embedding_linear", "finetune")
    started = time.perf_counter()
    if not audio:
        x, x_test = embed_windows(x.astype(np.float64)), embed_windows(
            x_test.astype(np.float64))
    model = _model(kind, params)
    if kind in ("cnn", "finetune"):
        model.fit(x, y, g)
    else:
        model.fit(x, y)
    fit_s = time.perf_counter() - started
    proba = model.predict_proba(x_test).reshape(test_rows.size, CLIP_S, -1).mean(axis=1)
    predicted = np.asarray(model.classes_)[proba.argmax(axis=1)]
    found = {"accuracy": float(np.mean(predicted == data["labels"][test_rows])),
             "fit_s": fit_s, "train_clips": int(train_rows.size),
             "epochs": getattr(model, "n_epochs_", None)}
    with (OUT_DIR / "esc10_progress.jsonl").open("a") as log:  # a long run shows progress
        log.write(json.dumps({"kind": kind, "params": params, "fold": test_fold,
                              "share": share, **found}) + "\n")
    return found


CONFIGS: list[tuple[str, str, dict[str, Any]]] = [
    ("cnn, defaults (augmentation: time shift only)", "cnn", {}),
    ("cnn, no augmentation", "cnn", NO_AUGMENT),
    ("cnn, 20% of recordings held out for early stopping", "cnn",
     {"validation_fraction": 0.2}),
    ("embedding network + logistic regression", "embedding_linear", {}),
    ("cnn fine-tuned from the embedding network", "finetune", {}),
    *[(f"{name} on logmel-v1 (reference)", name, {}) for name in STATISTICAL],
]


def measure(ctx: Context) -> dict[str, Any]:
    load_esc10(ctx.data_dir)
    folds = QUICK_FOLDS if ctx.quick else FOLDS
    pretrained, _ = run_isolated(pretrain, str(CACHE), str(EMBEDDING), threads=1,
                                 timeout_s=1800.0)
    results: dict[str, Any] = {}
    for label, kind, params in CONFIGS:
        runs = [run_isolated(fit_fold, str(CACHE), kind, params, fold, threads=1,
                             timeout_s=1800.0)[0] for fold in folds]
        results[label] = {"kind": kind, "params": params, "folds": runs}
    growth = [run_isolated(fit_fold, str(CACHE), "cnn", {}, folds[0], share, threads=1,
                           timeout_s=1800.0)[0] for share in GROWTH_SHARES[:-1]]
    growth.append(results[CONFIGS[0][0]]["folds"][0])
    return {"folds": list(folds), "results": results, "growth": growth,
            "pretrain": pretrained}


def _row(label: str, found: dict[str, Any], reference: float) -> list[str]:
    runs = found["folds"]
    accs = [r["accuracy"] for r in runs]
    per_100 = [100 * r["fit_s"] / r["train_clips"] for r in runs]
    return [label, fmt(float(np.mean(accs))), " / ".join(fmt(a) for a in accs),
            fmt(float(np.mean(per_100))), f"{np.mean(per_100) / reference:.2g}x"]


def tables(measured: dict[str, Any]) -> list[Table]:
    results = measured["results"]
    ref = results[f"{STATISTICAL[0]} on logmel-v1 (reference)"]["folds"]
    reference = float(np.mean([100 * r["fit_s"] / r["train_clips"] for r in ref]))
    main = Table(f"ESC-10 clip accuracy, cross-validated by fold (folds "
                 f"{', '.join(map(str, measured['folds']))}; 80 test clips per fold)",
                 ["classifier", "mean clip accuracy", "per fold", "training s per 100 clips "
                  "(one core)", "vs logreg"],
                 [_row(label, found, reference) for label, found in results.items()])
    growth = Table("cnn training time by training-set size (test fold "
                   f"{measured['folds'][0]})", ["training clips", "fit s", "s per 100 clips",
                                                "epochs", "clip accuracy"],
                   [[str(r["train_clips"]), fmt(r["fit_s"]),
                     fmt(100 * r["fit_s"] / r["train_clips"]), str(r["epochs"]),
                     fmt(r["accuracy"])] for r in measured["growth"]])
    p = measured["pretrain"]
    pre = Table("Embedding network pretraining (once, shared by the transfer rows)",
                ["recordings", "windows", "auxiliary classes", "epochs", "fit s"],
                [[str(p["clips"]), str(p["windows"]), str(p["clips"]), str(p["epochs"]),
                  fmt(p["fit_s"])]])
    return [main, growth, pre]


TEXT = """
Issue 14's figure. ESC-10 from the data dir (320 clips of 5 s, 10 classes, folds 1-4):
train on three folds, test on the fourth, every fold once. Each model gets 1 s windows of
16 kHz mono audio, as the service cuts them (statistical classifiers: the logmel-v1 vector
of each window; networks: its log-mel spectrogram, 40 mel bands x 30 frames); a clip is
classified by the mean of its windows' probabilities. Each fit runs in a fresh process
with one thread. *Training s per 100 clips* includes feature extraction; for the transfer
rows it counts the per-fold step only (the one pretraining is in its own table: its seconds
per 100 recordings are of the order of a cnn fit); *vs logreg* is the ratio to logistic
regression measured in the same run. The CNN trains on its three training folds for
max_epochs (the default; the held-out row holds out 20% of their recordings for early
stopping instead); the test fold is never seen during training.

Transfer: the embedding network (the same CNN, `detectors.embedding_net`) is pretrained
once on every recording held (all 320 clips, as the service trains it on all audio it
holds) with the recording each window comes from as its label: no class label is used,
so the test folds' audio is seen without its labels. Then, per fold, either a logistic
regression learns the classes on its 64-d penultimate layer, or the CNN is fine-tuned
from its weights on the training folds' labels.

Anchors: Piczak's CNN 0.81 on ESC-10 (5-fold), human 0.957. Goal: cnn >= 0.82.
"""


def run(ctx: Context) -> Section:
    measured = measure(ctx)
    return Section("esc10_cnn", "ESC-10: CNN on log-mel spectrograms, augmentation and "
                   "transfer", TEXT, tables(measured), measured)
