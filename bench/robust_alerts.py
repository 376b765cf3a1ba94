"""False alerts per hour of normal audio under the default alert rule (issue 15).

The DCASE 2020 clips of machine id_00 are 75 normal 10 s recordings of one machine (and one
anomalous one): how much normal varies between recordings. Train on the first 7, 20 or
40 recordings (:data:`N_TRAIN`; 1 s windows, as the service embeds an upload), then play
the last :data:`N_TEST` normal recordings back to back through the service's alert engine
(:func:`service.alerting.engine.step`, default rule) and count the alerts that fire; the
anomalous recording is played last to show the detector still alerts on a fault.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np

from bench import common
from bench.common import SR, Table, fmt
from detectors import registry
from ingest.features import embed
from service.alerting.engine import State, step
from service.alerting.hooks import ScoredWindow
from service.alerting.rules import DEFAULT_RULE

MACHINE = "id_00"
N_TRAIN = (7, 20, 40)  # recordings trained on: the user had 7
N_TEST = 35  # the last 35 normal recordings are the test stream for every size
SENSOR = UUID(int=1)
METHODS = (("ecod", False), ("ecod", True), ("domain_nn", False), ("domain_nn", True),
           ("domain_mahalanobis", False), ("domain_mahalanobis", True))


def _recordings(data_dir: Path) -> tuple[list[str], str]:
    rows = [r for r in common.read_manifest(data_dir)
            if r["path"].startswith("dcase2020/") and r["machine_id"] == MACHINE]
    normal = sorted(r["path"] for r in rows if r["label"] == "normal")
    anomaly = next(r["path"] for r in rows if r["label"] == "anomaly")
    return normal, anomaly


def _alerts(scores: list[np.ndarray], threshold: float) -> list[int]:
    """Alerts fired per recording when the recordings are scored back to back."""
    state, current, t0 = State(0, 0, None, {}), None, datetime(2026, 1, 1, tzinfo=UTC)
    fired, k = [], 0
    for recording in scores:
        windows = []
        for s in recording:
            windows.append(ScoredWindow(t0 + timedelta(seconds=k), SENSOR, float(s),
                                        threshold, bool(s > threshold)))
            k += 1
        episodes = step(DEFAULT_RULE, state, current, windows)
        fired.append(sum(e.alert_id is None for e in episodes if e is not current))
        current = next((e for e in reversed(episodes) if e.ends_at is None), None)
        if current is not None:
            current.alert_id = current.alert_id or UUID(int=2)
    return fired


def _one(name: str, by_recording: bool, train: list[np.ndarray], test: list[np.ndarray],
         anomaly: np.ndarray) -> dict[str, Any]:
    start = time.perf_counter()
    groups = np.concatenate([[i] * w.shape[0] for i, w in enumerate(train)])
    detector = registry.build(name, {}, None).fit(
        np.concatenate(train), groups=groups if by_recording else None)
    fired = _alerts([detector.decision_function(w) for w in [*test, anomaly]],
                    float(detector.threshold_))
    hours = sum(w.shape[0] for w in test) / 3600
    return {"method": name, "n_train": len(train),
            "calibration": "whole recordings" if by_recording else "windows",
            "threshold_method": detector.threshold_method_, "alerts": sum(fired[:-1]),
            "recordings_alerting": sum(f > 0 for f in fired[:-1]), "hours": hours,
            "alerts_per_hour": sum(fired[:-1]) / hours, "anomaly_alerts": fired[-1],
            "anomaly_windows_over": int((detector.decision_function(anomaly)
                                         > detector.threshold_).sum()),
            "anomaly_windows": int(anomaly.shape[0]),
            "confidence": detector.threshold_confidence_,
            "holdout_windows": detector.n_holdout_windows_,
            "holdout_recordings": detector.n_holdout_recordings_,
            "seconds": time.perf_counter() - start}


def false_alerts(data_dir: Path) -> list[dict[str, Any]]:
    normal, anomaly = _recordings(data_dir)

    def windows(path: str) -> np.ndarray:
        return embed(common.load_16k(path, data_dir), SR)

    every = [windows(p) for p in normal]
    test, bad = every[-N_TEST:], windows(anomaly)
    return [_one(name, by_rec, every[:n], test, bad) for n in N_TRAIN for name, by_rec in METHODS]


def describe() -> dict[str, Any]:
    return {"n_test": N_TEST, "rule": f"{DEFAULT_RULE.k} of {DEFAULT_RULE.n}"}


def table(rows: list[dict[str, Any]]) -> Table:
    out = [[str(r["n_train"]), r["method"], r["calibration"], r["threshold_method"],
            f"{r['holdout_windows']} / {r['holdout_recordings']} ({r['confidence']})",
            str(r["alerts"]), f"{r['recordings_alerting']}", fmt(r["hours"] * 3600),
            fmt(r["alerts_per_hour"]),
            f"{'yes' if r['anomaly_alerts'] else 'no'} ({r['anomaly_windows_over']} of "
            f"{r['anomaly_windows']} windows over)"]
           for r in rows]
    return Table(f"False alerts on normal audio: DCASE 2020 {MACHINE}, trained on the first "
                 f"7-40 recordings, alerts counted on the last {N_TEST}, default rule "
                 f"({DEFAULT_RULE.k} of {DEFAULT_RULE.n} windows)",
                 ["training recordings", "method", "threshold calibrated on", "threshold method",
                  "held-out windows / recordings (confidence)", "alerts",
                  "normal recordings alerting", "normal audio s", "false alerts per hour",
                  "anomalous recording alerts (windows over threshold)"], out)
