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
    - ``n_train_recordings_``, ``n_holdout_recordings_``: recordings (``groups``) the model
      and the threshold rest on (0 when fitted without groups).
    - ``threshold_confidence_``: "low" / "medium" / "high" (:func:`.calibration.confidence`).
    - ``fit_seconds_``: wall-clock time of :meth:`fit`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    param_specs: ClassVar[tuple[ParamSpec, ...]]
    min_windows: ClassVar[int] = 50
    # True for detectors that model operating conditions (see :meth:`fit`).
    uses_conditions: ClassVar[bool] = False

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

    def fit(self, X: ArrayLike, y: object = None, *, conditions: ArrayLike | None = None,
            groups: ArrayLike | None = None) -> Self:
        """Fit on normal-operation windows (rows in time order) and calibrate the threshold.

        ``conditions`` (optional, one label per window) name each window's operating
        condition; detectors that model conditions (:attr:`uses_conditions`) use them,
        others ignore them.

        ``groups`` (optional, one label per window) name the recording or upload each
        window comes from. With >= 3 recordings the threshold is calibrated on scores each
        recording gets from a model fitted *without* it (up to 5 folds of whole
        recordings, see :mod:`.calibration`), and is at least the level normal
        recordings reach given their spread (:func:`.calibration.recording_bound`), so
        another day's normal recording does not fire; the model itself is then fitted on
        every window (folds fitted on less data score a little higher, so the threshold
        errs towards fewer alerts). Windows of a condition other than the most common one
        stay in every fold's model.

        Without groups, the model is fitted on ~80 % of the windows and the threshold on
        the held-out ~20 % (whole blocks). The model is deliberately *not* refitted on
        all windows then: the threshold was calibrated for this exact model on unseen
        data, and a refit would change the score distribution it was calibrated for
        (e.g. kNN distances shrink with more reference points).
        """
        self._check_params()
        windows = self._check_training(X)
        start = time.perf_counter()
        n_rows = windows.shape[0]
        conds = calibration.encode(conditions, n_rows, "conditions")
        conds = conds if self.uses_conditions else None
        group_codes = calibration.encode(groups, n_rows, "groups")
        if group_codes is not None and np.unique(group_codes).size < calibration.MIN_GROUPS:
            group_codes = None
        self.n_features_in_ = windows.shape[1]
        if group_codes is None:
            fit_rows, holdout_rows = calibration.holdout_split(n_rows, self.random_state)
            model_rows = self._fit_rows(windows, fit_rows, conds)
            holdout_scores = self._score(self.scaler_.transform(windows[holdout_rows]))
            self.n_train_recordings_ = 0
        else:
            holdout_rows, holdout_scores = self._cross_scores(windows, conds, group_codes)
            model_rows = self._fit_rows(windows, np.arange(n_rows), conds)
            self.n_train_recordings_ = int(np.unique(group_codes).size)
        self._calibrate(holdout_scores, None if group_codes is None else group_codes[holdout_rows])
        Z_model = self.scaler_.transform(windows[model_rows])
        stats_rows = calibration.subsample_rows(model_rows.size, _MAX_STATS_ROWS,
                                                self.random_state)
        self.train_score_stats_ = calibration.score_stats(self._score(Z_model[stats_rows]))
        self.holdout_score_stats_ = calibration.score_stats(holdout_scores)
        self.n_train_windows_ = int(model_rows.size)
        self.n_holdout_windows_ = int(holdout_rows.size)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _fit_rows(self, windows: NDArray[np.floating[Any]], rows: NDArray[np.intp],
                  conditions: NDArray[np.int64] | None) -> NDArray[np.intp]:
        """Fit ``scaler_`` and ``model_`` on ``rows`` (subsampled); the rows modelled."""
        self.scaler_ = StandardScaler().fit(windows[rows])
        rows = rows[calibration.subsample_rows(rows.size, self.max_train, self.random_state)]
        Z = self.scaler_.transform(windows[rows])
        if conditions is not None:
            self.model_ = self._fit_conditions(Z, conditions[rows])
        else:
            self.model_ = self._fit_model(Z)
        return rows

    def _cross_scores(self, windows: NDArray[np.floating[Any]],
                      conditions: NDArray[np.int64] | None,
                      groups: NDArray[np.int64]) -> tuple[NDArray[np.intp], FloatArray]:
        """(rows, scores) of every recording scored by a model fitted without it."""
        # The few windows of a new operating condition stay in every fold's model.
        keep = None if conditions is None else conditions != np.bincount(conditions).argmax()
        rows_out, scores_out = [], []
        for fit_rows, held_rows in calibration.group_folds(groups, self.random_state, keep):
            self._fit_rows(windows, fit_rows, conditions)
            rows_out.append(held_rows)
            scores_out.append(self._score(self.scaler_.transform(windows[held_rows])))
        return np.concatenate(rows_out), np.concatenate(scores_out)

    def _calibrate(self, holdout_scores: FloatArray,
                   holdout_groups: NDArray[np.int64] | None) -> None:
        self.threshold_, self.threshold_method_ = calibration.fit_threshold(
            holdout_scores, self.threshold_method, self.threshold_q
        )
        self.n_holdout_recordings_ = 0
        if holdout_groups is not None:
            self.n_holdout_recordings_ = int(np.unique(holdout_groups).size)
            bound = calibration.recording_bound(holdout_scores, holdout_groups,
                                                self.threshold_q)
            if bound > self.threshold_:
                self.threshold_, self.threshold_method_ = bound, "recordings"
        self.threshold_confidence_ = calibration.confidence(
            int(holdout_scores.size), self.n_holdout_recordings_)

    def _fit_conditions(self, Z: FloatArray, conditions: NDArray[np.int64]) -> Any:
        """Fit with each row's condition code; only called when :attr:`uses_conditions`."""
        return self._fit_model(Z)

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
