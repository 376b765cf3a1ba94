"""Detectors that wrap PyOD models: Isolation Forest, kNN distance and PCA.

PyOD's own ``contamination`` threshold is ignored; :class:`BaseDetector` calibrates
``threshold_`` on held-out windows instead.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pyod.models.iforest import IForest
from pyod.models.knn import KNN
from pyod.models.pca import PCA

from .base import BaseDetector, FloatArray, max_train_spec
from .calibration import windows_needed
from .params import DEFAULT_THRESHOLD_METHOD, DEFAULT_THRESHOLD_Q, ParamSpec

# Components explaining less than this share of variance are numerical noise.
_MIN_VARIANCE_RATIO = 1e-6


class IForestDetector(BaseDetector):
    """Isolation Forest: windows that random splits isolate quickly are anomalous."""

    name: ClassVar[str] = "iforest"
    description: ClassVar[str] = (
        "Isolation Forest (PyOD). Robust all-rounder with no distribution assumptions; "
        "fit and scoring are linear in the number of windows."
    )
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec("n_estimators", int, 200, "Number of isolation trees.", min=10, max=2000),
        ParamSpec(
            "max_samples",
            int,
            256,
            "Windows drawn to grow each tree (capped at the number of training windows).",
            min=16,
            max=100_000,
        ),
        ParamSpec(
            "max_features",
            float,
            1.0,
            "Fraction of embedding dimensions drawn for each tree.",
            min=0.01,
            max=1.0,
        ),
        max_train_spec(100_000, "Trees only see max_samples windows each, so more adds little."),
    )

    def __init__(
        self,
        n_estimators: int = 200,
        max_samples: int = 256,
        max_features: float = 1.0,
        max_train: int = 100_000,
        random_state: int = 0,
        threshold_method: str = DEFAULT_THRESHOLD_METHOD,
        threshold_q: float = DEFAULT_THRESHOLD_Q,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.max_features = max_features
        self.max_train = max_train
        self.random_state = random_state
        self.threshold_method = threshold_method
        self.threshold_q = threshold_q

    def _fit_model(self, Z: FloatArray) -> IForest:
        model = IForest(
            n_estimators=self.n_estimators,
            max_samples=min(self.max_samples, Z.shape[0]),
            max_features=self.max_features,
            n_jobs=1,
            random_state=self.random_state,
        )
        return model.fit(Z)

    def _score(self, Z: FloatArray) -> FloatArray:
        return np.asarray(self.model_.decision_function(Z), dtype=np.float64)


class KNNDetector(BaseDetector):
    """Distance to the k nearest normal training windows."""

    name: ClassVar[str] = "knn"
    description: ClassVar[str] = (
        "k-nearest-neighbour distance (PyOD KNN) to a reference set of normal windows. "
        "Strong on multi-modal normal behaviour; scoring cost grows with max_train."
    )
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec("n_neighbors", int, 5, "Neighbours considered per window.", min=1, max=50),
        ParamSpec(
            "method",
            str,
            "mean",
            "Score as the 'mean', 'largest' or 'median' distance to the k neighbours.",
            choices=("mean", "largest", "median"),
        ),
        max_train_spec(
            10_000,
            "The sample is the reference set every scored window is compared with, so it "
            "bounds scoring cost.",
        ),
    )

    def __init__(
        self,
        n_neighbors: int = 5,
        method: str = "mean",
        max_train: int = 10_000,
        random_state: int = 0,
        threshold_method: str = DEFAULT_THRESHOLD_METHOD,
        threshold_q: float = DEFAULT_THRESHOLD_Q,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.method = method
        self.max_train = max_train
        self.random_state = random_state
        self.threshold_method = threshold_method
        self.threshold_q = threshold_q

    def _required_windows(self) -> int:
        # PyOD scores each reference window against the others, so the fit part needs
        # more than n_neighbors rows.
        return max(self.min_windows, windows_needed(self.n_neighbors + 1))

    def _fit_model(self, Z: FloatArray) -> KNN:
        return KNN(n_neighbors=self.n_neighbors, method=self.method, n_jobs=1).fit(Z)

    def _score(self, Z: FloatArray) -> FloatArray:
        return np.asarray(self.model_.decision_function(Z), dtype=np.float64)


class PCADetector(BaseDetector):
    """Weighted distance to the principal axes of normal windows (PyOD PCA)."""

    name: ClassVar[str] = "pca"
    description: ClassVar[str] = (
        "PCA (PyOD): sum of distances to the eigenvectors, each divided by its explained "
        "variance ratio, so deviations along low-variance directions weigh most. Fast."
    )
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec(
            "n_components",
            int,
            0,
            "Principal components kept; 0 keeps all (capped at the number of windows "
            "and dimensions).",
            min=0,
            max=4096,
        ),
        ParamSpec(
            "n_selected_components",
            int,
            0,
            "How many of the lowest-variance kept components enter the score; 0 uses all.",
            min=0,
            max=4096,
        ),
        max_train_spec(200_000, "The covariance estimate has long converged by then."),
    )

    def __init__(
        self,
        n_components: int = 0,
        n_selected_components: int = 0,
        max_train: int = 200_000,
        random_state: int = 0,
        threshold_method: str = DEFAULT_THRESHOLD_METHOD,
        threshold_q: float = DEFAULT_THRESHOLD_Q,
    ) -> None:
        self.n_components = n_components
        self.n_selected_components = n_selected_components
        self.max_train = max_train
        self.random_state = random_state
        self.threshold_method = threshold_method
        self.threshold_q = threshold_q

    def _fit_model(self, Z: FloatArray) -> PCA:
        # Centred data has rank <= n - 1; constant dimensions lower it further.
        rank_limit = min(Z.shape[0] - 1, Z.shape[1])
        model = self._pca(min(self.n_components or rank_limit, rank_limit)).fit(Z)
        # PyOD divides by each component's explained variance ratio, so a numerically
        # zero component (collinear dimensions) would swamp every score: drop those.
        informative = int(np.count_nonzero(model.explained_variance_ratio_ > _MIN_VARIANCE_RATIO))
        if informative < model.n_components_:
            model = self._pca(max(1, informative)).fit(Z)
        return model

    def _pca(self, n_components: int) -> PCA:
        return PCA(
            n_components=n_components,
            n_selected_components=min(self.n_selected_components or n_components, n_components),
            standardization=False,  # BaseDetector already standardised the windows
            random_state=self.random_state,
        )

    def _score(self, Z: FloatArray) -> FloatArray:
        return np.asarray(self.model_.decision_function(Z), dtype=np.float64)
