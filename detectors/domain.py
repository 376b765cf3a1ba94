"""Domain-generalising nearest-reference scoring (the DCASE 2023 baseline's selective idea).

A machine has plenty of normal audio of its usual operating condition (the *source*) and
perhaps a few minutes of a new condition (a *target*: another speed, load, product). A
model of all windows together lets the abundant source drown the few target windows, so a
normal target window looks anomalous. Here the source is summarised by k-means centres
and every target window is kept as a reference of its own; a window's score is its
distance to the nearest reference, divided by the typical distance within the condition
that reference belongs to, so one threshold holds across conditions whose spreads differ.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from numpy.typing import NDArray
from sklearn.cluster import KMeans
from sklearn.metrics import pairwise_distances_argmin_min

from .base import BaseDetector, FloatArray, max_train_spec
from .params import DEFAULT_THRESHOLD_METHOD, DEFAULT_THRESHOLD_Q, ParamSpec

# A condition's distance scale from fewer windows than this is noise: the source's is used.
_MIN_SCALE_WINDOWS = 3


class NearestReferenceModel:
    """Reference points (source centres + target windows), each with its condition's scale."""

    def __init__(self, references: FloatArray, scales: FloatArray) -> None:
        self.references = references
        self.scales = scales

    def score(self, Z: FloatArray) -> FloatArray:
        nearest, distance = pairwise_distances_argmin_min(Z, self.references)
        return np.asarray(distance / self.scales[nearest], dtype=np.float64)


def _loo_nn_distances(Z: FloatArray) -> FloatArray:
    """Each row's distance to its nearest *other* row."""
    squared = np.maximum(
        (Z**2).sum(1)[:, None] + (Z**2).sum(1)[None, :] - 2 * Z @ Z.T, 0.0)
    np.fill_diagonal(squared, np.inf)
    return np.asarray(np.sqrt(squared.min(axis=1)), dtype=np.float64)


class DomainNearestDetector(BaseDetector):
    """Distance to the nearest of the source's k-means centres and every target window."""

    name: ClassVar[str] = "domain_nn"
    description: ClassVar[str] = (
        "Distance to the nearest reference: k-means centres of the machine's main operating "
        "condition plus every window of its other (few-shot) conditions, scaled per "
        "condition (DCASE 2023 baseline's selective scoring). Use when a machine runs in "
        "several conditions and some have only minutes of normal audio; without "
        "conditions it is a k-means nearest-centre detector."
    )
    uses_conditions: ClassVar[bool] = True
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec("n_centres", int, 16,
                  "k-means centres summarising the main condition (fewer when windows are "
                  "scarce: at least min_windows_per_centre per centre).", min=1, max=1024),
        ParamSpec("min_windows_per_centre", int, 4,
                  "A centre needs this many windows, so a centre is never one window.",
                  min=1, max=10_000),
        ParamSpec("max_target_windows", int, 2000,
                  "Windows kept per few-shot condition (subsampled above it): every kept "
                  "window is a reference, so scoring cost grows with them.",
                  min=1, max=100_000),
        max_train_spec(50_000, "k-means cost is proportional to windows."),
    )

    def __init__(self, n_centres: int = 16, min_windows_per_centre: int = 4,
                 max_target_windows: int = 2000, max_train: int = 50_000,
                 random_state: int = 0, threshold_method: str = DEFAULT_THRESHOLD_METHOD,
                 threshold_q: float = DEFAULT_THRESHOLD_Q) -> None:
        self.n_centres = n_centres
        self.min_windows_per_centre = min_windows_per_centre
        self.max_target_windows = max_target_windows
        self.max_train = max_train
        self.random_state = random_state
        self.threshold_method = threshold_method
        self.threshold_q = threshold_q

    def _fit_model(self, Z: FloatArray) -> NearestReferenceModel:
        return self._fit_conditions(Z, np.zeros(Z.shape[0], dtype=np.int64))

    def _fit_conditions(self, Z: FloatArray, conditions: NDArray[np.int64]
                        ) -> NearestReferenceModel:
        names, counts = np.unique(conditions, return_counts=True)
        source = names[np.argmax(counts)]
        centres, source_scale = self._source_centres(Z[conditions == source])
        references, scales = [centres], [np.full(centres.shape[0], source_scale)]
        rng = np.random.default_rng(self.random_state)
        for name in names[names != source]:
            rows = Z[conditions == name]
            if rows.shape[0] > self.max_target_windows:
                rows = rows[rng.choice(rows.shape[0], self.max_target_windows, replace=False)]
            scale = source_scale
            if rows.shape[0] >= _MIN_SCALE_WINDOWS:
                scale = max(float(np.median(_loo_nn_distances(rows))), 1e-9)
            references.append(rows)
            scales.append(np.full(rows.shape[0], scale))
        return NearestReferenceModel(np.vstack(references), np.concatenate(scales))

    def _source_centres(self, Z: FloatArray) -> tuple[FloatArray, float]:
        n_centres = max(1, min(self.n_centres, Z.shape[0] // self.min_windows_per_centre))
        kmeans = KMeans(n_clusters=n_centres, n_init=3, random_state=self.random_state).fit(Z)
        _, distance = pairwise_distances_argmin_min(Z, kmeans.cluster_centers_)
        return kmeans.cluster_centers_, max(float(np.median(distance)), 1e-9)

    def _score(self, Z: FloatArray) -> FloatArray:
        return self.model_.score(Z)
