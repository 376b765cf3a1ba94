"""ECOD with empirical CDFs frozen at fit time.

Why not ``pyod.models.ecod.ECOD`` as is: its ``decision_function`` concatenates the
training set with the batch being scored and recomputes every ECDF and skewness on the
union. A window's score then depends on which other windows share its batch (a
streamed window and the same window in a backfill would disagree), scoring is
O((n_train + n_batch) log) per call, and the fitted object keeps per-call arrays the size
of the training set. :class:`FrozenECOD` applies PyOD's exact scoring rule to each window
on its own against the stored training ECDFs, so for a single window it reproduces
``ECOD.decision_function`` (up to the skewness sign of near-symmetric dimensions,
which PyOD recomputes with the new window included).
"""

from __future__ import annotations

from typing import ClassVar, Self

import numpy as np
from pyod.models.ecod import skew

from .base import BaseDetector, FloatArray, max_train_spec
from .params import DEFAULT_THRESHOLD_METHOD, DEFAULT_THRESHOLD_Q, ParamSpec


class FrozenECOD:
    """Per-dimension tail probabilities against training ECDFs (ECOD, Li et al. 2022)."""

    sorted_: FloatArray
    skew_sign_: FloatArray

    def fit(self, Z: FloatArray) -> Self:
        self.sorted_ = np.sort(Z, axis=0)
        self.skew_sign_ = np.sign(skew(Z, axis=0))
        return self

    def decision_function(self, Z: FloatArray) -> FloatArray:
        n_train = self.sorted_.shape[0]
        at_most = np.empty(Z.shape, dtype=np.float64)
        at_least = np.empty(Z.shape, dtype=np.float64)
        for j in range(Z.shape[1]):
            column = self.sorted_[:, j]
            at_most[:, j] = np.searchsorted(column, Z[:, j], side="right")
            at_least[:, j] = n_train - np.searchsorted(column, Z[:, j], side="left")
        # +1: PyOD's ECDF includes the scored window itself, which also keeps log finite.
        u_left = -np.log((at_most + 1) / (n_train + 1))
        u_right = -np.log((at_least + 1) / (n_train + 1))
        sign = self.skew_sign_
        u_skew = u_left * -np.sign(sign - 1) + u_right * np.sign(sign + 1)
        return np.maximum(np.maximum(u_left, u_right), u_skew).sum(axis=1)


class ECODDetector(BaseDetector):
    """Empirical-CDF outlier detection: sums per-dimension tail surprisal."""

    name: ClassVar[str] = "ecod"
    description: ClassVar[str] = (
        "ECOD (PyOD's scoring rule, training ECDFs frozen at fit time so scores do not "
        "depend on batch composition). Parameter-free and fast; treats dimensions "
        "independently."
    )
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (
        max_train_spec(
            10_000,
            "The sorted sample is stored in the model, so it bounds artifact size; tail "
            "probabilities resolve down to 1/max_train.",
        ),
    )

    def __init__(
        self,
        max_train: int = 10_000,
        random_state: int = 0,
        threshold_method: str = DEFAULT_THRESHOLD_METHOD,
        threshold_q: float = DEFAULT_THRESHOLD_Q,
    ) -> None:
        self.max_train = max_train
        self.random_state = random_state
        self.threshold_method = threshold_method
        self.threshold_q = threshold_q

    def _fit_model(self, Z: FloatArray) -> FrozenECOD:
        return FrozenECOD().fit(Z)

    def _score(self, Z: FloatArray) -> FloatArray:
        return np.asarray(self.model_.decision_function(Z), dtype=np.float64)
