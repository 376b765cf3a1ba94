"""Parametric density detectors: Gaussian mixture and Ledoit-Wolf Mahalanobis distance."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from sklearn.covariance import LedoitWolf, ShrunkCovariance
from sklearn.mixture import GaussianMixture

from .base import BaseDetector, FloatArray, max_train_spec
from .params import DEFAULT_THRESHOLD_METHOD, DEFAULT_THRESHOLD_Q, ParamSpec


class GMMDetector(BaseDetector):
    """Negative log-likelihood under a Gaussian mixture fitted to normal windows."""

    name: ClassVar[str] = "gmm"
    description: ClassVar[str] = (
        "Gaussian mixture (scikit-learn); score is the negative log-likelihood. A few "
        "components model a machine with several operating modes."
    )
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec(
            "n_components",
            int,
            4,
            "Mixture components (at most one per min_windows_per_component training windows).",
            min=1,
            max=32,
        ),
        ParamSpec(
            "min_windows_per_component",
            int,
            200,
            "Fewer components are fitted when training windows are scarce, because a "
            "component fitted to a handful of windows makes every unseen operating point "
            "look anomalous.",
            min=1,
            max=100_000,
        ),
        ParamSpec(
            "covariance_type",
            str,
            "diag",
            "Covariance structure of each component. 'diag' is fast and robust; 'full' "
            "models correlated dimensions but costs dimensions^2 per window and iteration.",
            choices=("full", "tied", "diag", "spherical"),
        ),
        ParamSpec(
            "reg_covar",
            float,
            1e-2,
            "Added to covariance diagonals (on standardised data). Keeps full covariances "
            "well conditioned when windows are few relative to dimensions.",
            min=1e-9,
            max=10.0,
        ),
        ParamSpec("max_iter", int, 100, "Maximum EM iterations.", min=1, max=1000),
        max_train_spec(50_000, "EM cost per iteration is proportional to windows."),
    )

    def __init__(
        self,
        n_components: int = 4,
        min_windows_per_component: int = 200,
        covariance_type: str = "diag",
        reg_covar: float = 1e-2,
        max_iter: int = 100,
        max_train: int = 50_000,
        random_state: int = 0,
        threshold_method: str = DEFAULT_THRESHOLD_METHOD,
        threshold_q: float = DEFAULT_THRESHOLD_Q,
    ) -> None:
        self.n_components = n_components
        self.min_windows_per_component = min_windows_per_component
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.max_train = max_train
        self.random_state = random_state
        self.threshold_method = threshold_method
        self.threshold_q = threshold_q

    def _fit_model(self, Z: FloatArray) -> GaussianMixture:
        supported = max(1, Z.shape[0] // self.min_windows_per_component)
        model = GaussianMixture(
            n_components=min(self.n_components, supported),
            covariance_type=self.covariance_type,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            random_state=self.random_state,
        )
        return model.fit(Z)

    def _score(self, Z: FloatArray) -> FloatArray:
        return -np.asarray(self.model_.score_samples(Z), dtype=np.float64)


def shrunk_covariance(Z: FloatArray, prior_strength: float) -> ShrunkCovariance:
    """Ledoit-Wolf covariance of ``Z``, shrunk at least ``k*d/(n + k*d)`` towards a scaled
    identity (k = ``prior_strength``, d dimensions, n rows)."""
    # LedoitWolf rather than MinCovDet: MCD is far too slow at these sizes, and the
    # training windows are normal operation, so robustness to outliers matters less.
    ledoit_wolf = LedoitWolf().fit(Z)
    # Ledoit-Wolf minimises error in the covariance, but the score uses its inverse,
    # which is unstable when windows are few relative to dimensions: unseen but normal
    # operating points then look far away along barely-sampled directions.
    pseudo_windows = prior_strength * Z.shape[1]
    floor = pseudo_windows / (Z.shape[0] + pseudo_windows)
    if ledoit_wolf.shrinkage_ >= floor:
        return ledoit_wolf
    # Same target as Ledoit-Wolf (scaled identity), just shrunk harder.
    return ShrunkCovariance(shrinkage=floor).fit(Z)


class MahalanobisDetector(BaseDetector):
    """Squared Mahalanobis distance under a Ledoit-Wolf shrunk covariance."""

    name: ClassVar[str] = "mahalanobis"
    description: ClassVar[str] = (
        "Squared Mahalanobis distance to the mean of normal windows with a Ledoit-Wolf "
        "shrunk covariance (scikit-learn). Fastest detector; assumes one operating mode."
    )
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec(
            "prior_strength",
            float,
            1.0,
            "Shrinkage is at least k*d/(n + k*d) for k = prior_strength, d dimensions and n "
            "windows: a prior worth k*d pseudo-windows. Matters only when windows are few; "
            "0 means pure Ledoit-Wolf.",
            min=0.0,
            max=100.0,
        ),
        max_train_spec(200_000, "The covariance estimate has long converged by then."),
    )

    def __init__(
        self,
        prior_strength: float = 1.0,
        max_train: int = 200_000,
        random_state: int = 0,
        threshold_method: str = DEFAULT_THRESHOLD_METHOD,
        threshold_q: float = DEFAULT_THRESHOLD_Q,
    ) -> None:
        self.prior_strength = prior_strength
        self.max_train = max_train
        self.random_state = random_state
        self.threshold_method = threshold_method
        self.threshold_q = threshold_q

    def _fit_model(self, Z: FloatArray) -> ShrunkCovariance:
        return shrunk_covariance(Z, self.prior_strength)

    def _score(self, Z: FloatArray) -> FloatArray:
        return np.asarray(self.model_.mahalanobis(Z), dtype=np.float64)
