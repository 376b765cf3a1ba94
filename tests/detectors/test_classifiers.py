"""The classifier registry, grouped cross-validation and classifier artifacts, on real
ESC-10 embeddings (logmel-v1 of fold-1 clips in DATA_DIR)."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import soundfile as sf

from detectors import artifact as detector_artifact
from detectors import classifier_artifact, classifiers
from detectors import registry as detector_registry
from detectors.errors import ArtifactError, InvalidParamsError, UnknownAlgorithmError
from ingest.features import embed
from tests.conftest import DATA_DIR

CLASSES = ("chainsaw", "rooster", "sea_waves")


@cache
def esc10(classes: tuple[str, ...] = CLASSES) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(windows, class per window, clip index per window) of every clip of `classes`."""
    X, y, groups = [], [], []
    paths = sorted(p for c in classes for p in (DATA_DIR / "esc10").glob(f"esc10__{c}__*"))
    for i, path in enumerate(paths):
        samples, sr = sf.read(path, dtype="float32", always_2d=True)
        windows = embed(samples, sr)
        X.append(windows)
        y += [path.name.split("__")[1]] * len(windows)
        groups += [i] * len(windows)
    return np.concatenate(X), np.array(y), np.array(groups)


def test_catalogue_lists_the_algorithms_with_param_specs() -> None:
    listed = {a["name"]: a for a in classifiers.list_algorithms()}
    assert set(listed) == {"logreg", "random_forest", "gradient_boosting", "mlp", "cnn"}
    assert {p["name"] for p in listed["logreg"]["params"]} == {"C", "max_iter", "class_weight"}
    assert classifiers.validate_params("random_forest", {"n_estimators": 10})["n_estimators"] == 10


def test_bad_names_and_params_say_what_is_wrong() -> None:
    with pytest.raises(UnknownAlgorithmError, match=r"unknown classifier algorithm 'svm'.*logreg"):
        classifiers.validate_params("svm", {})
    with pytest.raises(InvalidParamsError) as caught:
        classifiers.validate_params("logreg", {"C": -1, "depth": 3, "class_weight": "auto"})
    assert str(caught.value).startswith("invalid classifier parameters")
    assert len(caught.value.errors) == 3
    assert getattr(caught.value, "kind", None) == "classifier"


@pytest.mark.parametrize("name,params", [
    ("logreg", {}), ("random_forest", {"n_estimators": 50}),
    ("gradient_boosting", {"max_iter": 20}), ("mlp", {"hidden": 32, "max_iter": 200})])
def test_every_algorithm_fits_real_audio_far_above_chance(name: str, params: dict) -> None:
    X, y, groups = esc10()
    fitted = classifiers.fit(name, params, X, y, groups)
    labels, probs = classifiers.predict_proba(fitted.pipeline, X[:7])
    assert labels == sorted(CLASSES) == fitted.labels
    assert probs.shape == (7, 3) and np.allclose(probs.sum(axis=1), 1.0)
    metrics = fitted.metrics
    assert metrics["cv"]["method"] == "StratifiedGroupKFold" and metrics["cv"]["folds"] == 5
    assert np.asarray(metrics["confusion_matrix"]).sum() == len(y)
    assert set(metrics["per_class"]) == set(CLASSES)
    print(f"{name}: grouped CV accuracy {metrics['accuracy']:.3f} (chance 0.33)")
    assert metrics["accuracy"] >= 0.6


def test_grouped_cv_never_splits_a_group() -> None:
    # Each group is one vector repeated 5 times with a random label: a model that memorises
    # (a fully grown forest) is perfect if copies of a group sit on both sides of a fold,
    # and at chance when they never do.
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(60, 8))
    group_labels = rng.choice(["a", "b"], size=60)
    X = np.repeat(centres, 5, axis=0)
    y = np.repeat(group_labels, 5)
    groups = np.repeat(np.arange(60), 5)
    pipeline = classifiers.build("random_forest", {"n_estimators": 30})
    grouped = classifiers.cross_validate_metrics(pipeline, X, y, groups)
    leaky = classifiers.cross_validate_metrics(pipeline, X, y, np.arange(300))
    assert leaky["accuracy"] > 0.95
    assert grouped["accuracy"] < 0.75


def test_training_data_checks() -> None:
    X, y, groups = esc10()
    with pytest.raises(classifiers.ClassifierDataError, match="only one class"):
        classifiers.fit("logreg", {}, X[y == "rooster"], y[y == "rooster"], groups[y == "rooster"])
    few = np.concatenate([np.flatnonzero(y == "chainsaw"), np.flatnonzero(y == "rooster")[:3]])
    with pytest.raises(classifiers.ClassifierDataError, match=r"'rooster': 3.*at least 5"):
        classifiers.fit("logreg", {}, X[few], y[few], groups[few])


def test_one_group_per_class_cannot_be_cross_validated_but_still_fits() -> None:
    X, y, _ = esc10()
    fitted = classifiers.fit("logreg", {}, X, y, np.unique(y, return_inverse=True)[1])
    assert fitted.metrics["cv"]["folds"] == 0 and "at least 2 groups" in \
        fitted.metrics["cv"]["reason"]
    assert "accuracy" not in fitted.metrics


def test_artifact_round_trip_and_refusals() -> None:
    X, y, groups = esc10()
    fitted = classifiers.fit("logreg", {}, X, y, groups)
    blob, digest = classifier_artifact.dump(fitted.pipeline, "logreg", {"dim": 128})
    loaded, header = classifier_artifact.load(blob, digest)
    assert header["classes"] == sorted(CLASSES) and header["meta"] == {"dim": 128}
    assert np.array_equal(loaded.predict_proba(X[:5]), fitted.pipeline.predict_proba(X[:5]))
    assert classifier_artifact.read_header(blob)["algorithm"] == "logreg"
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        classifier_artifact.load(tampered, digest)
    detector = detector_registry.build("pca", {}, None).fit(X)
    other, other_digest = detector_artifact.dump(detector, {})
    with pytest.raises(ArtifactError, match="not an Earshot classifier artifact"):
        classifier_artifact.load(other, other_digest)
