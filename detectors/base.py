"""The estimator interface every Earshot detector implements.

Subclasses implement :meth:`BaseDetector._fit_model` and :meth:`BaseDetector._score` on
standardised data; this class owns validation, standardisation, the held-out split and
threshold calibration, so ``score > threshold_`` means "anomalous" for every algorithm.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_array, check_is_fitted

from . import calibration
from .errors import InsufficientDataError
from .params import THRESHOLD_SPECS, ParamSpec, validate

FloatArray = NDArray[np.float64]
# Training-score statistics are informational; a capped sample keeps fit fast for kNN.
_MAX_STATS_ROWS = 20_000

RANDOM_STATE_SPEC = ParamSpec(
    "random_state",
    int,
    0,
    "Seed for the held-out split, subsampling and any randomised model.",
    min=0,
    max=2**32 - 1,
)


def max_train_spec(default: int, why: str) -> ParamSpec:
    """The ``max_train`` parameter: rows above it are subsampled before fitting."""
    return ParamSpec(
        "max_train",
        int,
        default,
        f"Fit the model on at most this many training windows, sampled uniformly. {why}",
        min=100,
        max=10_000_000,
    )


class BaseDetector(BaseEstimator, ABC):
    """Anomaly detector over embedding windows; higher scores are more anomalous.

    Parameters follow scikit-learn rules: ``__init__`` only stores them, every learned
    attribute ends in ``_``. Fitted attributes shared by all algorithms:

    - ``scaler_``: StandardScaler fitted on the fit part of the training windows.
    - ``model_``: the algorithm's fitted core model.
    - ``threshold_``: scores above it are anomalous (see :meth:`predict`).
    - ``threshold_method_``: method actually used (gamma can fall back to quantile).
    - ``n_features_in_``, ``n_train_windows_``, ``n_holdout_windows_``.
    - ``train_score_stats_``, ``holdout_score_stats_``: mean/std/min/p50/p95/p99/max.
    - ``fit_seconds_``: wall-clock time of :meth:`fit`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    param_specs: ClassVar[tuple[ParamSpec, ...]]
    min_windows: ClassVar[int] = 50

    random_state: int
    max_train: int
    threshold_method: str
    threshold_q: float

    @classmethod
    def algorithm_specs(cls) -> tuple[ParamSpec, ...]:
        """Specs of the parameters a client may set (threshold excluded)."""
        return (*cls.param_specs, RANDOM_STATE_SPEC)

    @abstractmethod
    def _fit_model(self, Z: FloatArray) -> Any:
        """Fit and return the core model on standardised training rows."""

    @abstractmethod
    def _score(self, Z: FloatArray) -> FloatArray:
        """Anomaly scores of standardised rows using ``self.model_``."""

    def required_windows(self) -> int:
        """Fewest training windows :meth:`fit` accepts with the current parameters."""
        return self._required_windows()

    def _required_windows(self) -> int:
        # Hook for algorithms whose parameters raise the floor (kNN's n_neighbors).
        return self.min_windows

    def fit(self, X: ArrayLike, y: object = None) -> Self:
        """Fit on normal-operation windows (rows in time order) and calibrate the threshold.

        Standardisation and the core model are fitted on ~80 % of the windows; the
        threshold is fitted on scores of the held-out ~20 % (see :mod:`.calibration`).
        The model is deliberately *not* refitted on all windows afterwards: the threshold
        was calibrated for this exact model on unseen data, and a refit would change the
        score distribution it was calibrated for (e.g. kNN distances shrink with more
        reference points), while 20 % fewer normal windows costs little accuracy.
        """
        self._check_params()
        windows = self._check_training(X)
        start = time.perf_counter()
        seed = self.random_state
        fit_rows, holdout_rows = calibration.holdout_split(windows.shape[0], seed)
        self.n_features_in_ = windows.shape[1]
        self.scaler_ = StandardScaler().fit(windows[fit_rows])
        model_rows = fit_rows[calibration.subsample_rows(fit_rows.size, self.max_train, seed)]
        Z_model = self.scaler_.transform(windows[model_rows])
        self.model_ = self._fit_model(Z_model)

        holdout_scores = self._score(self.scaler_.transform(windows[holdout_rows]))
        self.threshold_, self.threshold_method_ = calibration.fit_threshold(
            holdout_scores, self.threshold_method, self.threshold_q
        )
        stats_rows = calibration.subsample_rows(model_rows.size, _MAX_STATS_ROWS, seed)
        self.train_score_stats_ = calibration.score_stats(self._score(Z_model[stats_rows]))
        self.holdout_score_stats_ = calibration.score_stats(holdout_scores)
        self.n_train_windows_ = int(model_rows.size)
        self.n_holdout_windows_ = int(holdout_rows.size)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def decision_function(self, X: ArrayLike) -> FloatArray:
        """Anomaly score per window (float64); higher is more anomalous."""
        check_is_fitted(self, "threshold_")
        windows: NDArray[np.floating[Any]] = check_array(X, dtype=[np.float64, np.float32])
        if windows.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {windows.shape[1]} features per window, but this detector was "
                f"fitted on {self.n_features_in_}-dimensional embeddings"
            )
        return np.asarray(self._score(self.scaler_.transform(windows)), dtype=np.float64)

    def predict(self, X: ArrayLike) -> NDArray[np.bool_]:
        """True where a window is anomalous, i.e. its score exceeds ``threshold_``."""
        return self.decision_function(X) > self.threshold_

    def _check_params(self) -> None:
        # Re-validate here so values set via set_params get the same checks as the API.
        params = self.get_params(deep=False)
        threshold = {
            "method": params.pop("threshold_method"),
            "q": params.pop("threshold_q"),
        }
        validate(self.algorithm_specs(), params, self.name)
        validate(THRESHOLD_SPECS, threshold, "threshold")

    def _check_training(self, X: ArrayLike) -> NDArray[np.floating[Any]]:
        # float32 input stays float32: 1M x 512 windows would double in memory otherwise.
        windows: NDArray[np.floating[Any]] = check_array(X, dtype=[np.float64, np.float32])
        needed = self._required_windows()
        if windows.shape[0] < needed:
            raise InsufficientDataError(
                windows.shape[0],
                needed,
                f"{self.name} fits on ~{1 - calibration.HOLDOUT_FRACTION:.0%} of the windows "
                f"and calibrates its threshold on the held-out rest",
            )
        return windows
