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
import numpy as np

from bench import stack
from bench.common import Clip, Context, Section, Table, fmt, read_manifest

FOLDS = (1, 2, 3, 4)
QUICK_FOLDS = (1,)
# (row, algorithm, params); fold-major, so a run stopped for time has the first rows on
# every fold it reached. The first two differ only in the fold ensemble.
Row = tuple[str, str, dict[str, Any]]
CLASSIFIERS: tuple[Row, ...] = (
    ("cnn (defaults)", "cnn", {}),
    ("cnn, fold_ensemble false", "cnn", {"fold_ensemble": False}),
    ("random_forest (reference)", "random_forest", {}),
    ("cnn, transfer linear", "cnn", {"transfer": "linear"}),
    ("cnn, transfer fine_tune", "cnn", {"transfer": "fine_tune"}))
QUICK_CLASSIFIERS: tuple[Row, ...] = (("logreg", "logreg", {}),)
PROGRESS = "esc10_api_progress.jsonl"
RESUME_ENV = "ESC10_API_RESUME"  # set: keep the progress log's finished (row, fold) pairs
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
        _log(progress, {"resumed": datetime.now(UTC).isoformat()})
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
            _log(progress, {"fleet": fleet})
        # fold-major: an interrupted run still compares like with like
        for fold, row in todo:
            name, params = results[row]["algorithm"], results[row]["params"]
            found = one_fold(client, ctx, by_fold, fold, name, params)
            results[row]["folds"].append(found)
            _log(progress, {"row": row, "classifier": name, "params": params, **found})
    return {"folds": list(folds), "results": results, "fleet": fleet,
            "resumed": (before or {}).get("resumed", 0) + (before is not None)}


def _log(path: Path, line: dict[str, Any]) -> None:
    with path.open("a") as log:
        log.write(json.dumps(line) + "\n")


def from_progress(path: Path) -> dict[str, Any]:
    """The measurement rebuilt from a run's progress log (a run stopped for time)."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    fleets = [line["fleet"] for line in lines if "fleet" in line]
    fleet = fleets[-1] if fleets else None  # a resumed run retrains it
    results: dict[str, Any] = {}
    for line in (x for x in lines if "row" in x):
        entry = results.setdefault(line["row"], {"algorithm": line["classifier"],
                                                 "params": line["params"], "folds": []})
        entry["folds"].append({k: v for k, v in line.items()
                               if k not in ("row", "classifier", "params")})
    folds = sorted({f["fold"] for r in results.values() for f in r["folds"]})
    return {"folds": folds, "results": results, "fleet": fleet,
            "resumed": sum(1 for line in lines if "resumed" in line)}


def _per_100(run: dict[str, Any]) -> tuple[float, float]:
    """Seconds per 100 training clips: the whole job (cross-validation and the final
    fit), and one fit (the job's seconds over its cv folds + 1 fits)."""
    whole = 100 * run["fit_s"] / run["train_clips"]
    return whole, whole / (run["cv_folds"] + 1)


def table(measured: dict[str, Any]) -> Table:
    rows = []
    for name, found in measured["results"].items():
        runs = found["folds"]
        if not runs:
            continue
        accs = [r["accuracy"] for r in runs]
        per = [_per_100(r) for r in runs]
        partial = "" if len(runs) == len(measured["folds"]) else \
            f" (PARTIAL: test folds {', '.join(str(r['fold']) for r in runs)} only)"
        rows.append([name + partial, fmt(float(np.mean(accs))),
                     " / ".join(fmt(a) for a in accs),
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


def fleet_table(fleet: dict[str, Any]) -> Table:
    per_100 = 100 * fleet["fit_seconds"] / max(1, fleet["n_recordings"])
    return Table("Fleet embedding the transfer rows start from (trained once by the service)",
                 ["version", "recordings", "windows", "auxiliary task", "epochs", "fit s",
                  "s per 100 recordings"],
                 [[str(fleet["version"]), str(fleet["n_recordings"]), str(fleet["n_windows"]),
                   str(fleet["aux_task"]), str(fleet["epochs"]), fmt(fleet["fit_seconds"]),
                   fmt(per_100)]])


TEXT = """
Issue 14's goal measured the way a user gets it: for each test fold (ESC-10 folds 1-4 of
the data dir, 80 clips each), one machine per row with one `logmel-v1` sensor (audio
policy `keep`); the other three folds' 240 clips uploaded as they are on disk with
`?label=<class>` (one clip every 20 s), `PUT /classifier {"algorithm": ..., "params": ...}`
with the row's parameters (all others default), `POST /train {"target": "classifier"}` and
the job awaited; then the test fold's clips uploaded without a class, and the scorer's
window predictions read back with `GET /predictions`. A clip's class is the argmax of the
mean of its windows' probabilities (the only computation outside the service). API, worker
and scorer are `earshot` processes on the embedded database, one thread each (training
concurrency 1).

Rows: *cnn (defaults)* predicts with the fold ensemble (`fold_ensemble: true`, the default:
the mean probabilities of the job's k grouped-CV fold models and its final model, k = 5
here, so 6 networks; docs/classification.md, fold ensemble); *fold_ensemble false* is the
final model alone (the previous default): same job, same fits, same seeds, only the
prediction differs. *random_forest* on logmel-v1 is the reference. The transfer rows
(`transfer: linear` / `fine_tune`, fold ensemble on) start from one fleet embedding the
service trains before the folds (`POST /v1/fleet/embedding/train`, defaults) on all 320
clips uploaded without a class to a library machine: as the service trains on all audio
it holds, it sees the test folds' audio, never their labels (auxiliary task: the recording).

*Job s per 100 training clips* is the model version's `fit_seconds` (the job's grouped
cross-validation, whose window accuracy is the *model's own CV* column, plus the final fit)
per 100 training clips; *one fit* divides it by the number of fits (cv folds + 1).
*Test windows predicted*: predictions read / windows accepted (a window without all of its
audio is not predicted). Each row has its own machine, and the bench checks that the model
version it reads is the algorithm it trained. One test fold is 80 clips: a fold's accuracy
has a standard error of ~0.045, a 4-fold mean ~0.02; the two cnn rows share their fits, so
their difference is the ensemble's alone.
"""


RESUMED = """
This run's stack was stopped from outside {n} time(s) (another job on the shared box) and
resumed with `ESC10_API_RESUME=1`: the (row, test fold) pairs finished before were kept
from the progress log and the rest ran on a fresh database; the transfer rows' fleet
embedding was retrained there on the same clips with the same seed (the table shows the
last training).
"""


def run(ctx: Context) -> Section:
    measured = measure(ctx)
    return section(measured)


def section(measured: dict[str, Any]) -> Section:
    text = TEXT
    if measured.get("resumed"):
        text += RESUMED.format(n=measured["resumed"])
    tables = [table(measured)]
    if measured.get("fleet"):
        tables.append(fleet_table(measured["fleet"]))
    return Section("esc10_api", "ESC-10 through the API: cnn clip accuracy by fold", text,
                   tables, measured)


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
