"""ESC-10 classification through the API (the classification issue's figure): every
fold-1 clip uploaded with its class, each classifier trained by a job, the model's own
cross-validated metrics; next to the same classifier cross-validated offline on windows
computed here from the same files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench import stack
from bench.common import Clip, Context, Table, fmt, read_manifest, run_isolated

CLASSIFIERS = ("logreg", "random_forest", "mlp", "gradient_boosting")
QUICK_CLASSIFIERS = ("logreg",)
CLIP_SPACING_S = 20


FOLD = 1


def esc10_clips(data_dir: Path) -> list[tuple[str, str]]:
    """(path, class) of the fold-1 ESC-10 clips in the data dir (the manifest holds folds
    1-4 since bench.esc10_cnn; this API figure stays on one fold's 80 clips)."""
    return [(r["path"], r["label"]) for r in read_manifest(data_dir)
            if r["path"].startswith("esc10/") and f"__{FOLD}-" in r["path"]]


def correct_windows(metrics: dict[str, Any]) -> str:
    """'right / all' windows from the confusion matrix: two classifiers can share an
    accuracy to the digit (logreg and random_forest both got 260 of 401 windows right on
    fold 1) with different confusion matrices; this shows the counts behind the figure."""
    matrix = np.asarray(metrics.get("confusion_matrix") or [[0]])
    return f"{int(np.trace(matrix))} / {int(matrix.sum())}"


def offline_classifier(data_dir: str, name: str) -> dict[str, Any]:
    """The reference: the same classifier on the same clips' logmel-v1 windows computed
    here (one group per clip), cross-validated by the same function the trainer calls."""
    from bench.common import load_16k
    from detectors import classifiers
    from ingest.features import embed

    xs, ys, groups = [], [], []
    for k, (path, label) in enumerate(esc10_clips(Path(data_dir))):
        windows = embed(load_16k(path, Path(data_dir)), 16_000)
        xs.append(windows)
        ys += [label] * len(windows)
        groups += [k] * len(windows)
    fitted = classifiers.fit(name, {}, np.concatenate(xs), np.array(ys), np.array(groups))
    return fitted.metrics


def collect_esc10(st: stack.Stack, ctx: Context) -> dict[str, Any]:
    """All fold-1 clips uploaded with their class, each classifier trained by a job; the
    model's cross-validated metrics, and the offline reference for each."""
    clips = esc10_clips(ctx.data_dir)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    names = QUICK_CLASSIFIERS if ctx.quick else CLASSIFIERS
    out: dict[str, Any] = {"clips": len(clips), "classes": len({c for _, c in clips})}
    with st.client(timeout_s=120.0) as client:
        machine = stack.create_machine(client, "esc10 fold 1", "room")
        sensor, _ = stack.create_sensor(client, machine)
        windows = 0
        for k, (path, label) in enumerate(clips):
            body, media, _ = stack.clip_audio(Clip(path), ctx.data_dir)
            found = stack.upload_audio(client, sensor, body, media,
                           start + timedelta(seconds=k * CLIP_SPACING_S), label=label)
            windows += int(found["accepted"])
        out["windows"], out["results"] = windows, {}
        for name in names:
            stack.raise_for(client.put(f"/v1/machines/{machine}/classifier",
                                       json={"algorithm": name}))
            job_id = stack.raise_for(client.post(f"/v1/machines/{machine}/train",
                                                 json={"target": "classifier"}))["job_id"]
            job = stack.wait_job(client, job_id)
            if job["state"] != "succeeded":
                raise stack.StackError(f"classifier {name} failed: {job['error']}")
            model = stack.raise_for(client.get(
                f"/v1/machines/{machine}/models/{job['model_version']}",
                params={"target": "classifier"}))
            reference, _ = run_isolated(offline_classifier, str(ctx.data_dir), name, threads=1)
            out["results"][name] = {"api": model["metrics"], "offline": reference,
                                    "fit_s": model["fit_seconds"], "n_windows": model["n_windows"]}
    return out


def esc10_table(esc: dict[str, Any]) -> Table:
    chance = 1 / esc["classes"]
    rows = []
    for name, r in esc["results"].items():
        api, ref = r["api"], r["offline"]
        rows.append([name, fmt(api.get("accuracy")), correct_windows(api),
                     fmt(api.get("macro_f1"), 4),
                     fmt(ref.get("accuracy")), fmt(ref.get("macro_f1")), fmt(chance),
                     f"{api['cv'].get('folds')} folds over {api['cv'].get('groups')} clips",
                     f"{r['n_windows']:,}", fmt(r["fit_s"])])
    return Table(f"ESC-10 fold 1 through the API ({esc['clips']} clips uploaded with their "
                 "class): the model's cross-validated window metrics",
                 ["classifier", "API accuracy", "right / windows", "API macro F1",
                  "offline reference accuracy",
                  "offline macro F1", "chance", "cross-validation", "windows", "fit s"], rows)
