"""Per-machine sound classifiers over embedding windows: what is this sound, what state is
the machine in. Pure ML: no database, settings or logging configuration.

A classifier is a scikit-learn pipeline ``StandardScaler -> estimator`` built from a
registered algorithm name and validated parameters (the same :class:`ParamSpec` machinery
as the anomaly detectors, so ``GET /v1/classifiers`` and request validation share specs).

Cross-validation is *grouped*: windows of one labelled range (one clip, one recording) are
never split between training and test folds. Neighbouring 1 s windows of one recording are
nearly identical, so an ungrouped split scores the classifier on near-copies of its own
training rows and reports an accuracy it will not reach on new recordings.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from .base import RANDOM_STATE_SPEC
from .errors import DetectorError, InvalidParamsError, UnknownAlgorithmError
from .params import ParamSpec, ParamValue, validate

DEFAULT_ALGORITHM = "logreg"
MAX_SPLITS = 5
# Fewer windows than this in a class cannot be learned nor cross-validated meaningfully.
MIN_WINDOWS_PER_CLASS = 5

_BALANCE = ParamSpec("class_weight", str, "balanced", "'balanced' weighs classes by the "
                     "inverse of their window counts (a rare event class is not drowned by "
                     "hours of normal running); 'none' weighs every window alike.",
                     choices=("balanced", "none"))


@dataclass(frozen=True)
class Algorithm:
    name: str
    description: str
    specs: tuple[ParamSpec, ...]
    make: Callable[[dict[str, ParamValue]], ClassifierMixin]
    # "embedding": rows are embedding vectors (standardised first); "audio": rows are
    # fixed-length mono 16 kHz clips (see detectors.audio_nets), fed as they are.
    input: str = "embedding"


TRANSFERS = ("none", "linear", "fine_tune")
# Parameters of the training job around the network, not of the network itself.
JOB_PARAMS = ("transfer", "fold_ensemble")


def _cnn(p: dict[str, ParamValue]) -> ClassifierMixin:
    from .cnn import CNNClassifier  # torch + skorch: imported when a cnn is built

    return CNNClassifier(**cast(dict[str, Any], {k: v for k, v in p.items()
                                                 if k not in JOB_PARAMS}))


def with_transfer(classifier: ClassifierMixin, transfer: str,
                  pretrained: Any) -> ClassifierMixin:
    """The `cnn`'s transfer option applied: `linear` (logistic regression on the fleet
    embedding, LinearOnEmbedding) or `fine_tune` (the CNN starts from its weights)."""
    if transfer == "none":
        return classifier
    if pretrained is None:
        raise ClassifierDataError(f"transfer {transfer!r} needs a trained fleet embedding")
    if transfer == "linear":
        from .embedding_net import LinearOnEmbedding

        return LinearOnEmbedding(pretrained)
    return cast(ClassifierMixin, classifier.set_params(pretrained=pretrained))


_CNN_SPECS = (
    ParamSpec("max_epochs", int, 30, "Most passes over the training clips; early stopping "
              "on the grouped validation loss usually ends sooner.", min=1, max=1000),
    ParamSpec("patience", int, 10, "Epochs without a better validation loss before "
              "stopping (the best epoch's weights are kept).", min=1, max=1000),
    ParamSpec("lr", float, 3e-3, "AdamW learning rate.", min=1e-6, max=1.0),
    ParamSpec("width", int, 16, "Channels of the first convolution (the network has "
              "~width^2 * 40 weights).", min=4, max=128),
    ParamSpec("gain_db", float, 0.0, "Augmentation: random gain of +- this many dB "
              "(0: off; 6 is a usual value).", min=0.0, max=40.0),
    ParamSpec("time_shift", bool, True, "Augmentation: rotate each clip in time."),
    ParamSpec("background", float, 0.0, "Augmentation: probability of mixing another "
              "training clip in at 6-20 dB below (0: off; 0.5 is a usual value).", min=0.0,
              max=1.0),
    ParamSpec("freq_mask", int, 0, "SpecAugment: widest masked band of mel bins (0: off; "
              "8 is a usual value).", min=0, max=64),
    ParamSpec("time_mask", int, 0, "SpecAugment: longest masked run of frames (0: off; "
              "12 is a usual value).", min=0, max=200),
    ParamSpec("mixup", float, 0.0, "Mixup Beta(a, a) parameter (0: off; 0.2 is a usual "
              "value).", min=0.0, max=10.0),
    ParamSpec("validation_fraction", float, 0.0, "Share of recordings (whole groups) held "
              "out for early stopping on their loss (0: train on every recording for "
              "max_epochs of the cosine schedule, which measured better on small sets).",
              min=0.0, max=0.5),
    ParamSpec("max_train_seconds", float, 900.0, "A fit running longer fails with a clear "
              "error instead of hanging.", min=1.0, max=86_400.0),
    ParamSpec("transfer", str, "none", "Start from the newest learned fleet embedding "
              "(docs/fleet_embedding.md): 'linear' is a logistic regression on its 64-d "
              "embedding (cheap, works from a handful of labels; the CNN parameters are "
              "unused), 'fine_tune' trains the CNN from its weights (width 16), 'none' "
              "from scratch.", choices=TRANSFERS),
    ParamSpec("fold_ensemble", bool, True, "Predict with the mean probabilities of the "
              "job's cross-validation fold models and its final model (k + 1 networks, "
              "k <= 5: no extra training, k + 1 times the prediction cost); false: the "
              "final model alone (docs/classification.md, fold ensemble)."),
    RANDOM_STATE_SPEC)


def _weight(params: Mapping[str, ParamValue]) -> str | None:
    return "balanced" if params["class_weight"] == "balanced" else None


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("logreg", "Multinomial logistic regression: fast, calibrated probabilities; "
              "a strong default on log-mel embeddings.",
              (ParamSpec("C", float, 1.0, "Inverse regularisation strength.", min=1e-6,
                         max=1e6), ParamSpec("max_iter", int, 1000, "Solver iterations.",
                                             min=10, max=100_000), _BALANCE),
              lambda p: LogisticRegression(C=p["C"], max_iter=p["max_iter"],
                                           class_weight=_weight(p))),
    Algorithm("random_forest", "Random forest: non-linear, robust to unscaled features.",
              (ParamSpec("n_estimators", int, 200, "Trees.", min=1, max=5000),
               ParamSpec("max_depth", int, 0, "Tree depth limit (0: unlimited).", min=0,
                         max=1000),
               ParamSpec("min_samples_leaf", int, 1, "Fewest windows per leaf.", min=1,
                         max=10_000), _BALANCE, RANDOM_STATE_SPEC),
              lambda p: RandomForestClassifier(
                  n_estimators=p["n_estimators"], max_depth=p["max_depth"] or None,
                  min_samples_leaf=p["min_samples_leaf"], class_weight=_weight(p),
                  random_state=p["random_state"], n_jobs=1)),
    Algorithm("gradient_boosting", "Histogram gradient boosting: strong on large labelled "
              "sets, slower to train.",
              (ParamSpec("max_iter", int, 100, "Boosting rounds.", min=1, max=10_000),
               ParamSpec("learning_rate", float, 0.1, "Shrinkage.", min=1e-4, max=1.0),
               ParamSpec("max_leaf_nodes", int, 31, "Leaves per tree.", min=2, max=4096),
               _BALANCE, RANDOM_STATE_SPEC),
              lambda p: HistGradientBoostingClassifier(
                  max_iter=p["max_iter"], learning_rate=p["learning_rate"],
                  max_leaf_nodes=p["max_leaf_nodes"], class_weight=_weight(p),
                  random_state=p["random_state"])),
    Algorithm("mlp", "Multi-layer perceptron with one hidden layer.",
              (ParamSpec("hidden", int, 128, "Units in the hidden layer.", min=1, max=4096),
               ParamSpec("alpha", float, 1e-3, "L2 penalty.", min=0.0, max=100.0),
               ParamSpec("max_iter", int, 500, "Training epochs.", min=10, max=100_000),
               RANDOM_STATE_SPEC),
              lambda p: MLPClassifier(hidden_layer_sizes=(p["hidden"],), alpha=p["alpha"],
                                      max_iter=p["max_iter"], random_state=p["random_state"],
                                      early_stopping=False)),
    Algorithm("cnn", "Small depthwise-separable CNN on log-mel spectrograms of the audio "
              "itself (torch, one thread), trained with augmentation and early stopping. "
              "Needs the sensor's audio stored for the labelled ranges.", _CNN_SPECS, _cnn,
              input="audio"),
)}


class ClassifierDataError(DetectorError, ValueError):
    """The labelled windows cannot train a classifier (one class, too few windows)."""


class UnknownClassifierError(UnknownAlgorithmError):
    kind = "classifier"  # the API's problem title names what was misconfigured

    def __init__(self, name: object, valid: Iterable[str]) -> None:
        super().__init__(name, valid)
        self.args = (f"unknown classifier algorithm {name!r}; valid algorithms: "
                     f"{', '.join(self.valid)}",)


class InvalidClassifierParamsError(InvalidParamsError):
    kind = "classifier"

    def __init__(self, errors: Iterable[str]) -> None:
        super().__init__(errors)
        self.args = ("invalid classifier parameters: " + "; ".join(self.errors),)


def get_algorithm(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except (KeyError, TypeError):
        raise UnknownClassifierError(name, ALGORITHMS) from None


def list_algorithms() -> list[dict[str, Any]]:
    """JSON-serialisable description of every classifier and its parameters."""
    return [{"name": a.name, "description": a.description, "input": a.input,
             "params": [spec.to_dict() for spec in a.specs]} for a in ALGORITHMS.values()]


def validate_params(name: str, params: Mapping[str, object] | None) -> dict[str, ParamValue]:
    """Parameters with defaults filled; UnknownClassifierError /
    InvalidClassifierParamsError (both subclass the detectors' errors)."""
    specs = get_algorithm(name).specs
    try:
        return validate(specs, params, name)
    except InvalidParamsError as exc:
        raise InvalidClassifierParamsError(exc.errors) from None


def build(name: str, params: Mapping[str, object] | None = None,
          pretrained: Any = None) -> Pipeline:
    """An unfitted ``StandardScaler -> classifier`` pipeline (audio classifiers: the
    classifier alone, with its transfer option from `pretrained`)."""
    checked = validate_params(name, params)
    algorithm = get_algorithm(name)
    if algorithm.input == "audio":
        classifier = with_transfer(algorithm.make(checked), str(checked.get("transfer", "none")),
                                   pretrained)
        return Pipeline([("classify", classifier)])
    return Pipeline([("scale", StandardScaler()), ("classify", algorithm.make(checked))])


def _group_params(pipeline: Pipeline, groups: NDArray[Any]) -> dict[str, Any]:
    """Fit parameters passing recording groups to a classifier that validates on them."""
    if getattr(pipeline[-1], "accepts_groups", False):
        return {"classify__groups": groups}
    return {}


def check_training_data(y: NDArray[Any], min_per_class: int = MIN_WINDOWS_PER_CLASS) -> None:
    """Refuse label sets no classifier can learn, saying what is missing."""
    labels, counts = np.unique(y, return_counts=True)
    if labels.size == 0:
        raise ClassifierDataError("no labelled windows")
    if labels.size == 1:
        raise ClassifierDataError(
            f"only one class ({str(labels[0])!r}, {int(counts[0])} windows) is labelled; a "
            "classifier needs at least two classes to tell apart")
    few = {str(label): int(n) for label, n in zip(labels, counts, strict=True)
           if n < min_per_class}
    if few:
        listed = ", ".join(f"{label!r}: {n}" for label, n in sorted(few.items()))
        raise ClassifierDataError(
            f"too few labelled windows for class(es) {listed}; each class needs at least "
            f"{min_per_class}")


def _n_splits(y: NDArray[Any], groups: NDArray[Any]) -> int:
    # Each test fold needs a group of every class to estimate that class's recall.
    per_class = min(np.unique(groups[y == label]).size for label in np.unique(y))
    return min(MAX_SPLITS, per_class, np.unique(groups).size)


def cross_validate_metrics(pipeline: Pipeline, X: ArrayLike, y: ArrayLike, groups: ArrayLike,
                           seed: int = 0) -> dict[str, Any]:
    """Grouped, stratified k-fold predictions of `pipeline` (cloned per fold) -> accuracy,
    per-class precision/recall/F1/support, macro F1 and the confusion matrix (rows: true
    class, columns: predicted, in `labels` order). k = min(5, groups of the rarest class);
    with fewer than 2 groups in some class nothing can be held out, and `cv` says why."""
    return _cross_validate(pipeline, X, y, groups, seed)[0]


def _cross_validate(pipeline: Pipeline, X: ArrayLike, y: ArrayLike, groups: ArrayLike,
                    seed: int
                    ) -> tuple[dict[str, Any], NDArray[np.float64] | None, list[Pipeline]]:
    """The metrics, the out-of-fold class probabilities (columns in `labels` order) and
    the fold models (kept for a fold ensemble)."""
    X_arr, y_arr = np.asarray(X), np.asarray(y)
    g_arr = np.asarray(groups)
    labels = [str(label) for label in np.unique(y_arr)]
    n_splits = _n_splits(y_arr, g_arr)
    if n_splits < 2:
        return {"labels": labels, "cv": {"folds": 0, "groups": int(np.unique(g_arr).size),
                "reason": "every class needs labelled ranges in at least 2 groups (clips or "
                          "recordings) to be cross-validated"}}, None, []
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    proba = np.zeros((y_arr.size, len(labels)))
    models = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ConvergenceWarning, UserWarning))
        for train_rows, test_rows in folds.split(X_arr, y_arr, g_arr):
            model = clone(pipeline).fit(X_arr[train_rows], y_arr[train_rows],
                                        **_group_params(pipeline, g_arr[train_rows]))
            # A fold may lack a class entirely: its column stays 0 for those rows.
            columns = [labels.index(str(c)) for c in model.classes_]
            proba[np.ix_(test_rows, columns)] = model.predict_proba(X_arr[test_rows])
            models.append(model)
    predicted = np.array(labels)[proba.argmax(axis=1)]
    return {"labels": labels, **_scores(y_arr, predicted, labels),
            "cv": {"folds": n_splits, "groups": int(np.unique(g_arr).size),
                   "method": "StratifiedGroupKFold"}}, proba, models


def _scores(y: NDArray[Any], predicted: NDArray[Any], labels: list[str]) -> dict[str, Any]:
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=labels, zero_division=0)
    per_class = {label: {"precision": float(precision[i]), "recall": float(recall[i]),
                         "f1": float(f1[i]), "support": int(support[i])}
                 for i, label in enumerate(labels)}
    return {"accuracy": float(np.mean(y == predicted)), "macro_f1": float(np.mean(f1)),
            "per_class": per_class,
            "confusion_matrix": confusion_matrix(y, predicted, labels=labels).tolist()}


@dataclass(frozen=True)
class FittedClassifier:
    pipeline: Pipeline
    labels: list[str]
    metrics: dict[str, Any]
    fit_seconds: float
    # Out-of-fold probabilities of the training rows (None without CV): what the model
    # says about windows it did not train on, e.g. to calibrate event timing.
    oof_proba: NDArray[np.float64] | None = None


def fit(name: str, params: Mapping[str, object] | None, X: ArrayLike, y: ArrayLike,
        groups: ArrayLike, min_per_class: int = MIN_WINDOWS_PER_CLASS,
        pretrained: Any = None) -> FittedClassifier:
    """Check the labels, cross-validate, then fit on every window."""
    y_arr = np.asarray(y).astype(str)
    check_training_data(y_arr, min_per_class)
    pipeline = build(name, params, pretrained)
    started = time.perf_counter()
    template = clone(pipeline)
    metrics, oof, fold_models = _cross_validate(pipeline, X, y_arr, groups, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipeline.fit(np.asarray(X), y_arr, **_group_params(pipeline, np.asarray(groups)))
    if validate_params(name, params).get("fold_ensemble", False):
        pipeline = _fold_ensemble(template, fold_models, pipeline)
    return FittedClassifier(pipeline, [str(c) for c in pipeline.classes_], metrics,
                            time.perf_counter() - started, oof)


def _fold_ensemble(template: Pipeline, fold_models: list[Pipeline], final: Pipeline
                   ) -> Pipeline:
    """The CV fold models and the final model as one pipeline predicting their mean
    probabilities (detectors.fold_ensemble): the fits the job made anyway."""
    from .fold_ensemble import FoldEnsemble

    return Pipeline([("classify", FoldEnsemble.of_fitted(
        template, [*fold_models, final], n_splits=MAX_SPLITS))])


def predict_proba(pipeline: Pipeline, X: ArrayLike) -> tuple[list[str], NDArray[np.float64]]:
    """(class labels, probabilities n x classes) of windows."""
    probs = np.asarray(pipeline.predict_proba(np.asarray(X)), dtype=np.float64)
    return [str(c) for c in pipeline.classes_], probs
