"""The esc10_api bench's progress log: a stopped run is rebuilt row by row with the folds
each row finished (labelled partial in the table), and a resumed run says so."""

from __future__ import annotations

from pathlib import Path

from bench.esc10_api_progress import from_progress, log_line
from bench.esc10_api_report import section


def _fold(fold: int, accuracy: float) -> dict[str, object]:
    return {"fold": fold, "accuracy": accuracy, "clips_predicted": 80, "test_clips": 80,
            "test_windows": 400, "predicted_windows": 400, "train_clips": 240,
            "fit_s": 60.0, "n_windows": 1200, "cv_folds": 5, "cv_window_accuracy": 0.7,
            "version": 1}


def test_a_stopped_and_resumed_run_is_rebuilt(tmp_path: Path) -> None:
    log = tmp_path / "progress.jsonl"
    log_line(log, {"fleet": {"version": 1, "n_recordings": 320, "n_windows": 1595,
                             "fit_seconds": 15.0, "epochs": 30, "aux_task": "recording"}})
    for fold in (1, 2):
        log_line(log, {"row": "cnn (defaults)", "classifier": "cnn", "params": {},
                       **_fold(fold, 0.8)})
    log_line(log, {"row": "random_forest", "classifier": "random_forest", "params": {},
                   **_fold(1, 0.7)})
    log_line(log, {"resumed": "2026-12-07T04:30:00+00:00"})
    log_line(log, {"fleet": {"version": 1, "n_recordings": 320, "n_windows": 1595,
                             "fit_seconds": 16.0, "epochs": 30, "aux_task": "recording"}})
    measured = from_progress(log)
    assert measured["folds"] == [1, 2] and measured["resumed"] == 1
    assert measured["fleet"]["fit_seconds"] == 16.0  # the last training
    assert [f["fold"] for f in measured["results"]["cnn (defaults)"]["folds"]] == [1, 2]
    text = section(measured).render("stamp")
    assert "| cnn (defaults) | 0.800 |" in text
    assert "random_forest (PARTIAL: test folds 1 only)" in text
    assert "resumed with `ESC10_API_RESUME=1`" in text and "1 time(s)" in text
