"""Fold ensemble (CV-bagging): predict with the mean class probabilities of the k
cross-validation fold models and the model fitted on every row.

The classifier job fits those k + 1 models anyway (k to measure, one to serve), so keeping
the fold models costs no training time: only k + 1 forward passes per prediction instead
of one, and k + 1 models in the artifact. Each fold model saw a different (k-1)/k of the
recordings and a network's fit depends on its data order and starting point, so their
errors differ in part; their mean is a steadier estimate than any one of them (bagging,
with the folds as bags). It is what a small-data network needs most: one fit's accuracy
on new recordings varies with its seed and data by more than the gap between settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils.validation import check_is_fitted


def _fit_one(estimator: Any, X: NDArray[Any], y: NDArray[Any], groups: NDArray[Any]) -> Any:
    if getattr(estimator, "accepts_groups", False):
        return estimator.fit(X, y, groups=groups)
    return estimator.fit(X, y)


class FoldEnsemble(ClassifierMixin, BaseEstimator):
    """Mean probabilities of grouped-CV fold models of `estimator` and its fit on all rows.

    ``fit`` trains them itself (grouped, stratified k folds: a recording never straddles a
    fold model's training and held-out rows); :meth:`of_fitted` assembles the models a
    caller already fitted (the classifier job's cross-validation) without refitting.
    """

    accepts_groups = True

    def __init__(self, estimator: Any = None, n_splits: int = 5, random_state: int = 0
                 ) -> None:
        self.estimator, self.n_splits, self.random_state = estimator, n_splits, random_state

    def fit(self, X: ArrayLike, y: ArrayLike, groups: ArrayLike | None = None) -> Self:
        X_arr, y_arr = np.asarray(X), np.asarray(y).astype(str)
        g = np.arange(len(y_arr)) if groups is None else np.asarray(groups)
        per_class = min(np.unique(g[y_arr == c]).size for c in np.unique(y_arr))
        k = min(self.n_splits, per_class)
        members = []
        if k >= 2:
            splitter = StratifiedGroupKFold(n_splits=k, shuffle=True,
                                            random_state=self.random_state)
            for rows, _ in splitter.split(X_arr, y_arr, g):
                members.append(_fit_one(clone(self.estimator), X_arr[rows], y_arr[rows],
                                        g[rows]))
        members.append(_fit_one(clone(self.estimator), X_arr, y_arr, g))
        return self._keep(members)

    @classmethod
    def of_fitted(cls, estimator: Any, members: Sequence[Any], n_splits: int,
                  random_state: int = 0) -> FoldEnsemble:
        """An ensemble of already fitted `members` (fold models, then the final model);
        `estimator` is their unfitted template, kept so the ensemble can be cloned."""
        return cls(estimator, n_splits, random_state)._keep(list(members))

    def _keep(self, members: list[Any]) -> Self:
        if not members:
            raise ValueError("a fold ensemble needs at least one fitted model")
        # The final model saw every row, so it knows every class; a fold model may lack
        # one (its column is then 0 in that model's vote).
        self.classes_ = np.asarray([str(c) for c in members[-1].classes_])
        self.members_ = members
        return self

    @property
    def n_members_(self) -> int:
        """Models whose probabilities each prediction averages (fold models + final)."""
        return len(self.members_)

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "members_")
        X_arr = np.asarray(X)
        total = np.zeros((len(X_arr), self.classes_.size))
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        for model in self.members_:
            columns = [index[str(c)] for c in model.classes_]
            total[:, columns] += np.asarray(model.predict_proba(X_arr), dtype=np.float64)
        return np.asarray(total / len(self.members_))

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])
