"""ESC-10 clip accuracy THROUGH THE API, cross-validated by fold (issue 14's goal: `cnn`
>= 0.82): for each test fold, one machine per classifier; the other folds' clips uploaded
with their class (`?label=`), `PUT /classifier`, `POST /train` (the job cross-validates and
fits as for any user), then the test fold's clips uploaded without a class, the scorer's
window predictions read back with `GET /predictions`, and each clip classified by the mean
of its windows' probabilities. Nothing is computed outside the service but that mean.
Transfer rows start from a fleet embedding the service trains (`POST /v1/fleet/embedding/
train`) on every clip uploaded, unlabelled, to a library machine first.

``python -m bench.esc10_api progress [FILE]`` rebuilds the section from the progress log of
a run stopped early (each row with the test folds it finished).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench import stack
from bench.common import Clip, Context, Section, read_manifest
from bench.esc10_api_progress import PROGRESS, RESUME_ENV, from_progress, log_line
from bench.esc10_api_report import section, table

FOLDS = (1, 2, 3, 4)
QUICK_FOLDS = (1,)
# (row, algorithm, params); fold-major, so a run stopped for time has the first rows on
# every fold it reached. The first two differ only in the fold ensemble, the first and
# third only in the augmentation (time shift, the default, or none).
Row = tuple[str, str, dict[str, Any]]
CLASSIFIERS: tuple[Row, ...] = (
    ("cnn (defaults)", "cnn", {}),
    ("cnn, fold_ensemble false", "cnn", {"fold_ensemble": False}),
    ("cnn, no augmentation", "cnn", {"time_shift": False}),
    ("random_forest (reference)", "random_forest", {}),
    ("cnn, transfer linear", "cnn", {"transfer": "linear"}),
    ("cnn, transfer fine_tune", "cnn", {"transfer": "fine_tune"}))
QUICK_CLASSIFIERS: tuple[Row, ...] = (("logreg", "logreg", {}),)
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
    # Machine names are unique: one machine per row (two rows may share an algorithm).
    label = f"{name} {json.dumps(params, sort_keys=True)}" if params else name
    machine = stack.create_machine(client, f"esc10 {label} test fold {test_fold}", "room")
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


def fleet_embedding(client: httpx.Client, ctx: Context,
                    by_fold: dict[int, list[tuple[str, str]]]) -> dict[str, Any]:
    """Every clip uploaded without a class to a library machine, then one fleet embedding
    trained by the service on that audio (its defaults); the run's figures."""
    machine = stack.create_machine(client, "esc10 library", "room")
    sensor, _ = stack.create_sensor(client, machine)
    clips = [c for _, fold in sorted(by_fold.items()) for c in fold]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=4)
    upload(client, sensor, clips, start, ctx.data_dir, labelled=False)
    run_id = stack.raise_for(client.post("/v1/fleet/embedding/train", json={}))["id"]
    found: dict[str, Any] = {}

    def done() -> bool:
        nonlocal found
        found = stack.raise_for(client.get(f"/v1/fleet/embedding/runs/{run_id}"))
        return found["state"] in ("succeeded", "failed")

    stack.wait_until(done, JOB_TIMEOUT_S, "the fleet embedding run", interval_s=5.0)
    if found["state"] != "succeeded":
        raise stack.StackError(f"fleet embedding failed: {found['error']}")
    return {k: found[k] for k in ("version", "n_recordings", "n_windows", "fit_seconds")} | {
        "epochs": (found["metrics"] or {}).get("epochs"),
        "aux_task": (found["metrics"] or {}).get("aux_task")}


def measure(ctx: Context, chosen: tuple[Row, ...] | None = None,
            folds: tuple[int, ...] | None = None, db: str = "esc10_api") -> dict[str, Any]:
    by_fold = fold_clips(ctx.data_dir)
    folds = folds or (QUICK_FOLDS if ctx.quick else FOLDS)
    chosen = chosen or (QUICK_CLASSIFIERS if ctx.quick else CLASSIFIERS)
    progress = ctx.out_dir / PROGRESS
    # A run whose stack was stopped from outside (a shared box) resumes from its log.
    before = from_progress(progress) if os.environ.get(RESUME_ENV) and progress.exists() \
        else None
    if before is None:
        progress.write_text("")  # this run's lines only
    else:
        log_line(progress, {"resumed": datetime.now(UTC).isoformat()})
    old = before["results"] if before else {}
    results: dict[str, Any] = {row: {"algorithm": name, "params": params,
                                     "folds": list(old.get(row, {}).get("folds", []))}
                               for row, name, params in chosen}
    todo = [(fold, row) for fold in folds for row, _, _ in chosen
            if fold not in {f["fold"] for f in results[row]["folds"]}]
    transfer = {row for row, _, p in chosen if p.get("transfer", "none") != "none"}
    fleet = before["fleet"] if before else None
    with stack.running_stack(db, scheduler_env={"EARSHOT_TRAIN_CONCURRENCY": "1",
                                                "EARSHOT_FLEET_RETRAIN_HOURS": "0"}) as st, \
            st.client(timeout_s=120.0) as client:
        if any(row in transfer for _, row in todo):
            fleet = fleet_embedding(client, ctx, by_fold)
            log_line(progress, {"fleet": fleet})
        # fold-major: an interrupted run still compares like with like
        for fold, row in todo:
            name, params = results[row]["algorithm"], results[row]["params"]
            found = one_fold(client, ctx, by_fold, fold, name, params)
            results[row]["folds"].append(found)
            log_line(progress, {"row": row, "classifier": name, "params": params, **found})
    return {"folds": list(folds), "results": results, "fleet": fleet,
            "resumed": (before or {}).get("resumed", 0) + (before is not None)}


def run(ctx: Context) -> Section:
    measured = measure(ctx)
    return section(measured)


if __name__ == "__main__":
    # python -m bench.esc10_api '[["row", "cnn", {params}], ...]' [1,2,3,4]
    # python -m bench.esc10_api progress [bench/out/esc10_api_progress.jsonl]
    import sys

    if sys.argv[1] == "progress":
        source = Path(sys.argv[2]) if len(sys.argv) > 2 else stack.OUT_DIR / PROGRESS
        print(section(from_progress(source)).render(f"_Rebuilt from {source}._"))
        sys.exit(0)
    given = tuple(tuple(row) for row in json.loads(sys.argv[1]))
    picked = tuple(int(f) for f in sys.argv[2].split(",")) if len(sys.argv) > 2 else FOLDS
    found = measure(Context(), given, picked, db="esc10_api_cli")
    (stack.OUT_DIR / "esc10_api_cli.json").write_text(json.dumps(found, indent=1))
    print(table(found).render())
