"""The esc10_api bench's progress log: one JSON line per finished (row, test fold), so a
run stopped for time is rebuilt (``python -m bench.esc10_api progress``) and a run whose
stack was stopped from outside resumes (``ESC10_API_RESUME=1``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROGRESS = "esc10_api_progress.jsonl"
RESUME_ENV = "ESC10_API_RESUME"  # set: keep the progress log's finished (row, fold) pairs


def log_line(path: Path, line: dict[str, Any]) -> None:
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
