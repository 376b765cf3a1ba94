"""The fold ensemble (detectors.fold_ensemble): the classifier job's CV fold models kept
and averaged with the final model. Contract (params-only __init__, clone, learned state in
`*_`), the mean of the members' probabilities with a class missing from a member, the
`cnn`'s `fold_ensemble` switch (the final member is the very model predicting without
it: no extra training), and the artifact round trip with its checksum check."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from detectors import classifier_artifact, classifiers
from detectors.errors import ArtifactError
from detectors.fold_ensemble import FoldEnsemble
from tests.detectors.conftest import gaussian
from tests.detectors.test_cnn import CLASSES, FAST, windows


def _three_classes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.concatenate([gaussian(60, seed=k, shift=1.5 * k) for k in range(3)])
    y = np.repeat(np.array(["a", "b", "c"]), 60)
    return x, y, np.arange(180) // 6  # groups of 6 rows, one class each


def test_fit_trains_fold_models_and_a_final_model() -> None:
    x, y, g = _three_classes()
    ensemble = FoldEnsemble(LogisticRegression(max_iter=500), n_splits=4).fit(x, y, g)
    assert ensemble.n_members_ == 5 and list(ensemble.classes_) == ["a", "b", "c"]
    mean = np.mean([m.predict_proba(x) for m in ensemble.members_], axis=0)
    assert np.allclose(ensemble.predict_proba(x), mean)
    assert np.allclose(ensemble.predict_proba(x).sum(axis=1), 1.0)
    assert np.mean(ensemble.predict(x) == y) > 0.8
    copy = clone(ensemble)  # params only: an unfitted ensemble of the same kind
    assert copy.get_params()["n_splits"] == 4 and not hasattr(copy, "members_")


def test_too_few_groups_for_folds_keep_the_final_model_alone() -> None:
    x, y, _ = _three_classes()
    one_group_per_class = np.repeat([0, 1, 2], 60)
    ensemble = FoldEnsemble(LogisticRegression(max_iter=500)).fit(x, y, one_group_per_class)
    assert ensemble.n_members_ == 1


def test_a_member_without_a_class_votes_zero_for_it() -> None:
    x, y, _ = _three_classes()
    full = LogisticRegression(max_iter=500).fit(x, y)
    two = LogisticRegression(max_iter=500).fit(x[y != "c"], y[y != "c"])
    ensemble = FoldEnsemble.of_fitted(LogisticRegression(), [two, full], n_splits=2)
    proba = ensemble.predict_proba(x)
    assert np.allclose(proba[:, 2], full.predict_proba(x)[:, 2] / 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="at least one"):
        FoldEnsemble.of_fitted(LogisticRegression(), [], n_splits=2)


def test_cnn_fold_ensemble_reuses_the_jobs_fits() -> None:
    x, y, g = windows()
    fitted = classifiers.fit("cnn", FAST, x, y, g)  # fold_ensemble: the default
    single = classifiers.fit("cnn", {**FAST, "fold_ensemble": False}, x, y, g)
    ensemble = fitted.pipeline[-1]
    assert isinstance(ensemble, FoldEnsemble)
    assert ensemble.n_members_ == fitted.metrics["cv"]["folds"] + 1
    assert not isinstance(single.pipeline[-1], FoldEnsemble)
    # Same seeds, same rows: the final member is the model the switch-off predicts with,
    # and the cross-validation metrics are the same fits' (nothing trained twice).
    assert np.allclose(ensemble.members_[-1].predict_proba(x),
                       single.pipeline.predict_proba(x), atol=1e-6)
    assert fitted.metrics["accuracy"] == single.metrics["accuracy"]
    mean = np.mean([m.predict_proba(x) for m in ensemble.members_], axis=0)
    assert np.allclose(fitted.pipeline.predict_proba(x), mean, atol=1e-6)

    blob, digest = classifier_artifact.dump(fitted.pipeline, "cnn", {"input": "audio"})
    loaded, header = classifier_artifact.load(blob, digest)
    assert header["classes"] == list(CLASSES) and header["libraries"]["torch"]
    assert loaded[-1].n_members_ == ensemble.n_members_
    assert np.allclose(loaded.predict_proba(x), fitted.pipeline.predict_proba(x), atol=1e-6)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        classifier_artifact.load(tampered, digest)


def test_registry_lists_the_switch() -> None:
    listed = {a["name"]: a for a in classifiers.list_algorithms()}
    spec = next(s for s in listed["cnn"]["params"] if s["name"] == "fold_ensemble")
    assert spec["default"] is True and spec["type"] == "bool"
    with pytest.raises(classifiers.InvalidClassifierParamsError, match="fold_ensemble"):
        classifiers.validate_params("cnn", {"fold_ensemble": "sometimes"})
