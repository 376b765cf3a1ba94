"""The esc10_api bench's section: method text, the accuracy table and the fleet embedding
the transfer rows start from."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.common import Section, Table, fmt


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
prediction differs. *no augmentation* is the defaults with `time_shift: false` (time shift
is the defaults' only augmentation): whether it earns its place through the API.
*random_forest* on logmel-v1 is the reference. The transfer rows
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
has a standard error of ~0.045, a 4-fold mean ~0.02; the first two cnn rows share their
fits (same data, same seeds), so their difference is the ensemble's alone.
"""




RESUMED = """
This run's stack was stopped from outside {n} time(s) (another job on the shared box) and
resumed with `ESC10_API_RESUME=1`: the (row, test fold) pairs finished before were kept
from the progress log and the rest ran on a fresh database; the transfer rows' fleet
embedding was retrained there on the same clips with the same seed (the table shows the
last training).
"""


def section(measured: dict[str, Any]) -> Section:
    text = TEXT
    if measured.get("resumed"):
        text += RESUMED.format(n=measured["resumed"])
    tables = [table(measured)]
    if measured.get("fleet"):
        tables.append(fleet_table(measured["fleet"]))
    return Section("esc10_api", "ESC-10 through the API: cnn clip accuracy by fold", text,
                   tables, measured)
