"""Mahalanobis distance with separate statistics per operating condition.

The machine's usual condition (the *source*, its most common one) gets a mean and a
Ledoit-Wolf shrunk covariance. Every other condition (a *target*, often minutes of "new
normal") gets its own mean and a covariance that is its own sample covariance shrunk
towards the source's, with a prior worth ``prior_strength * d`` pseudo-windows: a target
of a handful of windows borrows the source's shape of variation around its own centre,
a well-sampled target gets its own. A window's score is the smallest Mahalanobis distance
over the conditions, each divided by its condition's typical distance (per-condition
score normalisation), so one threshold and one alert rule hold across conditions whose
spreads differ, and the nearest condition decides (no condition is needed at scoring).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from .base import BaseDetector, FloatArray, max_train_spec
from .gaussian import shrunk_covariance
from .params import DEFAULT_THRESHOLD_METHOD, DEFAULT_THRESHOLD_Q, ParamSpec

# A condition's distance scale from fewer windows than this is noise: the source's is used.
_MIN_SCALE_WINDOWS = 3


class ConditionGaussians:
    """One mean, precision (inverse covariance) and distance scale per condition."""

    def __init__(self, means: FloatArray, precisions: FloatArray, scales: FloatArray) -> None:
        self.means = means
        self.precisions = precisions
        self.scales = scales

    def distances(self, Z: FloatArray) -> FloatArray:
        """(rows, conditions) Mahalanobis distances, unscaled."""
        out = np.empty((Z.shape[0], self.means.shape[0]), dtype=np.float64)
        for c, (mean, precision) in enumerate(zip(self.means, self.precisions, strict=True)):
            centred = Z - mean
            out[:, c] = np.einsum("ij,jk,ik->i", centred, precision, centred)
        return np.sqrt(np.maximum(out, 0.0))

    def score(self, Z: FloatArray) -> FloatArray:
        return np.asarray((self.distances(Z) / self.scales).min(axis=1), dtype=np.float64)


def _blend(source_cov: FloatArray, rows: FloatArray, pseudo_windows: float) -> FloatArray:
    """The target's sample covariance shrunk towards the source's (a conjugate prior worth
    ``pseudo_windows`` windows)."""
    n = rows.shape[0]
    if n < 2:
        return source_cov
    weight = n / (n + pseudo_windows)
    own = np.cov(rows, rowvar=False, bias=True)
    return np.asarray(weight * own + (1 - weight) * source_cov, dtype=np.float64)


class DomainMahalanobisDetector(BaseDetector):
    """Smallest per-condition Mahalanobis distance, scaled per condition."""

    name: ClassVar[str] = "domain_mahalanobis"
    description: ClassVar[str] = (
        "Mahalanobis distance with separate statistics per operating condition: the main "
        "condition's mean and Ledoit-Wolf covariance, each other (few-shot) condition's "
        "own mean and a covariance shrunk towards the main one; score = smallest distance "
        "over conditions, divided by that condition's typical distance. Use when a machine "
        "runs in several declared conditions; without conditions it is a Mahalanobis "
        "detector."
    )
    uses_conditions: ClassVar[bool] = True
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec("prior_strength", float, 1.0,
                  "The main condition's covariance is shrunk at least k*d/(n + k*d) towards "
                  "a scaled identity, another condition's towards the main condition's "
                  "covariance (k = prior_strength, d dimensions, n the condition's "
                  "windows).", min=0.0, max=100.0),
        ParamSpec("scale_per_condition", bool, True,
                  "Divide each condition's distances by its typical (median) distance, so "
                  "one threshold holds across conditions; false: raw distances."),
        max_train_spec(200_000, "The covariance estimates have long converged by then."),
    )

    def __init__(self, prior_strength: float = 1.0, scale_per_condition: bool = True,
                 max_train: int = 200_000, random_state: int = 0,
                 threshold_method: str = DEFAULT_THRESHOLD_METHOD,
                 threshold_q: float = DEFAULT_THRESHOLD_Q) -> None:
        self.prior_strength = prior_strength
        self.scale_per_condition = scale_per_condition
        self.max_train = max_train
        self.random_state = random_state
        self.threshold_method = threshold_method
        self.threshold_q = threshold_q

    def _fit_model(self, Z: FloatArray) -> ConditionGaussians:
        return self._fit_conditions(Z, np.zeros(Z.shape[0], dtype=np.int64))

    def _fit_conditions(self, Z: FloatArray, conditions: NDArray[np.int64]
                        ) -> ConditionGaussians:
        names, counts = np.unique(conditions, return_counts=True)
        order = np.argsort(-counts, kind="stable")  # the source (most windows) first
        source_rows = Z[conditions == names[order[0]]]
        source_cov = np.asarray(shrunk_covariance(source_rows, self.prior_strength).covariance_,
                                dtype=np.float64)
        pseudo_windows = max(self.prior_strength * Z.shape[1], 1e-9)
        means, covariances, members = [], [], []
        for index in order:
            rows = Z[conditions == names[index]]
            means.append(rows.mean(axis=0))
            covariances.append(source_cov if index == order[0]
                               else _blend(source_cov, rows, pseudo_windows))
            members.append(rows)
        precisions = np.stack([np.linalg.pinv(c, hermitian=True) for c in covariances])
        model = ConditionGaussians(np.stack(means), precisions, np.ones(len(means)))
        if self.scale_per_condition:
            model.scales = self._scales(model, members)
        return model

    @staticmethod
    def _scales(model: ConditionGaussians, members: list[FloatArray]) -> FloatArray:
        """Each condition's median distance of its own windows to its own mean, corrected
        to what an unseen window gets (its own window pulled the mean by 1/n)."""
        scales = np.empty(len(members))
        for c, rows in enumerate(members):
            n = rows.shape[0]
            if n < _MIN_SCALE_WINDOWS:
                scales[c] = scales[0] if c else 1.0  # the source's, which comes first
                continue
            own = ConditionGaussians(model.means[c:c + 1], model.precisions[c:c + 1],
                                     np.ones(1)).distances(rows)[:, 0]
            scales[c] = max(float(np.median(own)) * n / (n - 1), 1e-9)
        return scales

    def _score(self, Z: FloatArray) -> FloatArray:
        return self.model_.score(Z)
