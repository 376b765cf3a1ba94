"""ESC-10 clip accuracy THROUGH THE API, cross-validated by fold (issue 14's goal: `cnn`
>= 0.82): for each test fold, one machine per classifier; the other folds' clips uploaded
with their class (`?label=`), `PUT /classifier`, `POST /train` (the job cross-validates and
fits as for any user), then the test fold's clips uploaded without a class, the scorer's
window predictions read back with `GET /predictions`, and each clip classified by the mean
of its windows' probabilities. Nothing is computed outside the service but that mean.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench import stack
from bench.common import Clip, Context, Section, Table, fmt, read_manifest

FOLDS = (1, 2, 3, 4)
QUICK_FOLDS = (1,)
CLASSIFIERS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("cnn", {}), ("random_forest", {}))
QUICK_CLASSIFIERS: tuple[tuple[str, dict[str, Any]], ...] = (("logreg", {}),)
SPACING_S = 20  # one clip (5 s) every 20 s: no window holds two clips
JOB_TIMEOUT_S = 3600.0
PREDICT_TIMEOUT_S = 600.0


def fold_clips(data_dir: Path) -> dict[int, list[tuple[str, str]]]:
    """(path, class) of the ESC-10 clips of the data dir, by ESC fold."""
    out: dict[int, list[tuple[str, str]]] = {}
    for r in read_manifest(data_dir):
        if r["path"].startswith("esc10/"):
            fold = int(Path(r["path"]).name.split("__")[2][0])
            out.setdefault(fold, []).append((r["path"], r["label"]))
    return out


def upload(client: httpx.Client, sensor: str, clips: list[tuple[str, str]],
           start: datetime, data_dir: Path, labelled: bool) -> int:
    """Clips uploaded one every SPACING_S from `start`; windows accepted."""
    windows = 0
    for k, (path, label) in enumerate(clips):
        body, media, _ = stack.clip_audio(Clip(path), data_dir)
        extra = {"label": label} if labelled else {}
        found = stack.upload_audio(client, sensor, body, media,
                                   start + timedelta(seconds=k * SPACING_S), **extra)
        windows += int(found["accepted"])
    return windows


def predictions(client: httpx.Client, machine: str, start: datetime, end: datetime
                ) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"start": stack.rfc3339(start),
                                        "end": stack.rfc3339(end), "limit": 10_000}
        if cursor:
            params["cursor"] = cursor
        page = stack.raise_for(client.get(f"/v1/machines/{machine}/predictions",
                                          params=params))
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items


def wait_predictions(client: httpx.Client, machine: str, start: datetime, end: datetime,
                     expected: int) -> list[dict[str, Any]]:
    """The test range's predictions once the scorer has stored them all (or stopped adding
    any for 30 s: windows without all of their audio are not predicted)."""
    found: list[dict[str, Any]] = []
    last = (-1, 0.0)

    def done() -> bool:
        nonlocal found, last
        found = predictions(client, machine, start, end)
        now = datetime.now(UTC).timestamp()
        if len(found) != last[0]:
            last = (len(found), now)
        return len(found) >= expected or (len(found) > 0 and now - last[1] > 30)

    stack.wait_until(done, PREDICT_TIMEOUT_S, f"predictions of machine {machine}",
                     interval_s=2.0)
    return found


def clip_accuracy(items: list[dict[str, Any]], clips: list[tuple[str, str]],
                  start: datetime) -> tuple[float, int]:
    """Each clip's class: argmax of the mean of its windows' probabilities; (accuracy,
    clips with at least one prediction)."""
    sums: dict[int, dict[str, float]] = {}
    for item in items:
        t = datetime.fromisoformat(item["t"].replace("Z", "+00:00"))
        k = int((t - start).total_seconds() // SPACING_S)
        acc = sums.setdefault(k, {})
        for label, p in item["probabilities"].items():
            acc[label] = acc.get(label, 0.0) + p
    right = sum(1 for k, (_, label) in enumerate(clips)
                if k in sums and max(sums[k], key=lambda c: sums[k][c]) == label)
    return right / len(clips), len(sums)


def train(client: httpx.Client, machine: str, name: str, params: dict[str, Any]
          ) -> dict[str, Any]:
    stack.raise_for(client.put(f"/v1/machines/{machine}/classifier",
                               json={"algorithm": name, "params": params}))
    job_id = stack.raise_for(client.post(f"/v1/machines/{machine}/train",
                                         json={"target": "classifier"}))["job_id"]
    job = stack.wait_job(client, job_id, timeout_s=JOB_TIMEOUT_S)
    if job["state"] != "succeeded":
        raise stack.StackError(f"classifier {name} failed: {job['error']}")
    model = stack.raise_for(client.get(f"/v1/machines/{machine}/models/"
                                       f"{job['model_version']}",
                                       params={"target": "classifier"}))
    if model["algorithm"] != name:  # one model reported twice would look like a tie
        raise stack.StackError(f"trained {name}, model says {model['algorithm']}")
    return model


def one_fold(client: httpx.Client, ctx: Context, by_fold: dict[int, list[tuple[str, str]]],
             test_fold: int, name: str, params: dict[str, Any]) -> dict[str, Any]:
    train_clips = [c for f, clips in sorted(by_fold.items()) if f != test_fold
                   for c in clips]
    test_clips = by_fold[test_fold]
    machine = stack.create_machine(client, f"esc10 {name} test fold {test_fold}", "room")
    sensor, _ = stack.create_sensor(client, machine)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    upload(client, sensor, train_clips, start, ctx.data_dir, labelled=True)
    model = train(client, machine, name, params)
    test_start = start + timedelta(seconds=SPACING_S * (len(train_clips) + 1))
    expected = upload(client, sensor, test_clips, test_start, ctx.data_dir, labelled=False)
    test_end = test_start + timedelta(seconds=SPACING_S * len(test_clips))
    items = wait_predictions(client, machine, test_start, test_end, expected)
    accuracy, predicted = clip_accuracy(items, test_clips, test_start)
    cv = model["metrics"].get("cv", {})
    return {"fold": test_fold, "accuracy": accuracy, "clips_predicted": predicted,
            "test_clips": len(test_clips), "test_windows": expected,
            "predicted_windows": len(items), "train_clips": len(train_clips),
            "fit_s": model["fit_seconds"], "n_windows": model["n_windows"],
            "cv_folds": cv.get("folds", 0), "cv_window_accuracy": model["metrics"].get(
                "accuracy"), "version": model["version"]}


def measure(ctx: Context, chosen: tuple[tuple[str, dict[str, Any]], ...] | None = None,
            folds: tuple[int, ...] | None = None, db: str = "esc10_api") -> dict[str, Any]:
    by_fold = fold_clips(ctx.data_dir)
    folds = folds or (QUICK_FOLDS if ctx.quick else FOLDS)
    chosen = chosen or (QUICK_CLASSIFIERS if ctx.quick else CLASSIFIERS)
    results: dict[str, Any] = {name: {"params": params, "folds": []} for name, params in chosen}
    with stack.running_stack(db,
                             scheduler_env={"EARSHOT_TRAIN_CONCURRENCY": "1"}) as st, \
            st.client(timeout_s=120.0) as client:
        for fold in folds:  # fold-major: an interrupted run still compares like with like
            for name, params in chosen:
                found = one_fold(client, ctx, by_fold, fold, name, params)
                results[name]["folds"].append(found)
                with (ctx.out_dir / "esc10_api_progress.jsonl").open("a") as log:
                    log.write(json.dumps({"classifier": name, "params": params, **found})
                              + "\n")
    return {"folds": list(folds), "results": results}


def _per_100(run: dict[str, Any]) -> tuple[float, float]:
    """Seconds per 100 training clips: the whole job (cross-validation and the final
    fit), and one fit (the job's seconds over its cv folds + 1 fits)."""
    whole = 100 * run["fit_s"] / run["train_clips"]
    return whole, whole / (run["cv_folds"] + 1)


def table(measured: dict[str, Any]) -> Table:
    rows = []
    for name, found in measured["results"].items():
        runs = found["folds"]
        accs = [r["accuracy"] for r in runs]
        per = [_per_100(r) for r in runs]
        rows.append([name, fmt(float(np.mean(accs))), " / ".join(fmt(a) for a in accs),
                     fmt(float(np.mean([r["cv_window_accuracy"] for r in runs]))),
                     fmt(float(np.mean([p[0] for p in per]))),
                     fmt(float(np.mean([p[1] for p in per]))),
                     " / ".join(f"{r['predicted_windows']}/{r['test_windows']}"
                                for r in runs)])
    return Table(f"ESC-10 clip accuracy through the API, cross-validated by fold (test "
                 f"folds {', '.join(map(str, measured['folds']))}; 80 test clips each)",
                 ["classifier", "mean clip accuracy", "per test fold",
                  "model's own CV window accuracy", "job s per 100 training clips",
                  "one fit s per 100 clips", "test windows predicted"], rows)


TEXT = """
Issue 14's goal measured the way a user gets it: for each test fold (ESC-10 folds 1-4 of
the data dir, 80 clips each), one machine per classifier with one `logmel-v1` sensor
(audio policy `keep`); the other three folds' 240 clips uploaded as they are on disk with
`?label=<class>` (one clip every 20 s), `PUT /classifier {"algorithm": ...}` with default
parameters, `POST /train {"target": "classifier"}` and the job awaited; then the test
fold's clips uploaded without a class, and the scorer's window predictions read back with
`GET /predictions`. A clip's class is the argmax of the mean of its windows' probabilities
(the only computation outside the service). API, worker and scorer are `earshot`
processes on the embedded database, one thread each (training concurrency 1).

*Job s per 100 training clips* is the model version's `fit_seconds` (the job's grouped
cross-validation, whose window accuracy is the *model's own CV* column, plus the final fit)
per 100 training clips; *one fit* divides it by the number of fits (cv folds + 1).
*Test windows predicted*: predictions read / windows accepted (a window without all of its
audio is not predicted). Each classifier has its own machine, and the bench checks that
the model version it reads is the algorithm it trained (the old API figure's logreg /
random_forest tie was two different models, see quality_api).
"""


def run(ctx: Context) -> Section:
    measured = measure(ctx)
    return section(measured)


def section(measured: dict[str, Any]) -> Section:
    return Section("esc10_api", "ESC-10 through the API: cnn clip accuracy by fold", TEXT,
                   [table(measured)], measured)


if __name__ == "__main__":  # python -m bench.esc10_api '{"cnn": {params}}' [1,2,3,4]
    import sys

    given = json.loads(sys.argv[1])
    picked = tuple(int(f) for f in sys.argv[2].split(",")) if len(sys.argv) > 2 else FOLDS
    found = measure(Context(), tuple(given.items()), picked, db="esc10_api_cli")
    (stack.OUT_DIR / "esc10_api_cli.json").write_text(json.dumps(found, indent=1))
    print(table(found).render())
