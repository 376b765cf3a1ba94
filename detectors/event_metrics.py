"""Event-based evaluation of detected sound events against reference annotations, as
sed_eval's EventBasedMetrics defines it (onset collar, optional offset condition), with a
maximum bipartite matching of estimated to reference events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from .events import RefEvent


@dataclass(frozen=True)
class ClassScore:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        total = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / total if total else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": self.precision,
                "recall": self.recall, "f1": self.f1}


def _matches(ref: RefEvent, est: RefEvent, collar: float, offset_ratio: float | None) -> bool:
    if abs(est[1] - ref[1]) > collar:
        return False
    if offset_ratio is None:
        return True
    return abs(est[2] - ref[2]) <= max(collar, offset_ratio * (ref[2] - ref[1]))


def event_scores(reference: Sequence[RefEvent], estimated: Sequence[RefEvent],
                 collar: float = 0.2, offset_ratio: float | None = None,
                 ) -> dict[str, ClassScore]:
    """Event-based scores per class, as sed_eval's EventBasedMetrics defines them.

    An estimated event matches a reference event of the same class when its onset lies
    within `collar` seconds of the reference onset (and, if `offset_ratio` is given, its
    offset within max(collar, offset_ratio * reference length) of the reference offset).
    Each event matches at most one other; the pairing maximises the number of matches
    (a maximum bipartite matching, not a greedy one). Every class of either list gets a
    score; recordings must share one clock (offset them before calling for several).
    """
    scores: dict[str, ClassScore] = {}
    for label in sorted({e[0] for e in reference} | {e[0] for e in estimated}):
        refs = [e for e in reference if e[0] == label]
        ests = [e for e in estimated if e[0] == label]
        valid = np.array([[_matches(r, e, collar, offset_ratio) for e in ests] for r in refs],
                         dtype=np.float64).reshape(len(refs), len(ests))
        rows, cols = linear_sum_assignment(valid, maximize=True)
        tp = int(valid[rows, cols].sum()) if valid.size else 0
        scores[label] = ClassScore(tp=tp, fp=len(ests) - tp, fn=len(refs) - tp)
    return scores


def micro_average(scores: Mapping[str, ClassScore]) -> ClassScore:
    return ClassScore(tp=sum(s.tp for s in scores.values()),
                      fp=sum(s.fp for s in scores.values()),
                      fn=sum(s.fn for s in scores.values()))

