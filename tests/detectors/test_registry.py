"""Registry: listing, validation of params and threshold config, construction, sklearn API."""

from __future__ import annotations

import inspect
import json
import math

import pytest
from sklearn.base import clone

from detectors import (
    ALGORITHMS,
    DetectorError,
    InvalidParamsError,
    UnknownAlgorithmError,
    build,
    get_algorithm,
    list_algorithms,
    validate_params,
    validate_threshold,
)
from detectors.registry import threshold_schema
from tests.detectors.conftest import gaussian

EXPECTED = {"iforest", "gmm", "knn", "pca", "ecod", "mahalanobis", "autoencoder", "domain_nn",
            "domain_mahalanobis"}


def test_every_required_algorithm_is_registered() -> None:
    assert set(ALGORITHMS) == EXPECTED
    for name, cls in ALGORITHMS.items():
        assert get_algorithm(name) is cls
        assert cls.name == name


def test_list_algorithms_is_json_serialisable_and_self_consistent() -> None:
    listing = list_algorithms()
    assert json.loads(json.dumps(listing)) == listing
    assert {entry["name"] for entry in listing} == EXPECTED
    for entry in listing:
        assert entry["description"]
        for param in entry["params"]:
            assert {"name", "type", "default", "description"} <= set(param)
            assert param["type"] in {"int", "float", "str", "bool"}
            if "choices" in param:
                assert param["default"] in param["choices"]
            if "min" in param:
                assert param["default"] >= param["min"]
            if "max" in param:
                assert param["default"] <= param["max"]
        # Every listed default must itself pass validation.
        defaults = {p["name"]: p["default"] for p in entry["params"]}
        assert validate_params(entry["name"], defaults) == defaults


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_specs_match_the_constructor_signature(name: str) -> None:
    cls = get_algorithm(name)
    signature = inspect.signature(cls.__init__).parameters
    spec_defaults = {spec.name: spec.default for spec in cls.algorithm_specs()}
    constructor_defaults = {key: p.default for key, p in signature.items() if key != "self"}
    assert constructor_defaults.pop("threshold_method") == "quantile"
    assert constructor_defaults.pop("threshold_q") == 0.99
    assert constructor_defaults == spec_defaults


def test_unknown_algorithm_lists_valid_names() -> None:
    with pytest.raises(UnknownAlgorithmError) as excinfo:
        get_algorithm("lstm")
    assert excinfo.value.valid == sorted(EXPECTED)
    for name in EXPECTED:
        assert name in str(excinfo.value)
    with pytest.raises(UnknownAlgorithmError):
        build("lstm", {})
    assert isinstance(excinfo.value, DetectorError)


def test_validate_params_fills_defaults() -> None:
    params = validate_params("knn", {"n_neighbors": 7})
    assert params == {"n_neighbors": 7, "method": "mean", "max_train": 10_000, "random_state": 0}
    assert validate_params("ecod", None) == validate_params("ecod", {})


def test_unknown_param_names_the_valid_ones() -> None:
    with pytest.raises(InvalidParamsError) as excinfo:
        validate_params("iforest", {"n_trees": 100})
    (error,) = excinfo.value.errors
    assert "n_trees" in error
    for valid in ("n_estimators", "max_samples", "max_features", "max_train", "random_state"):
        assert valid in error


@pytest.mark.parametrize(
    ("name", "params", "bad"),
    [
        ("iforest", {"n_estimators": 10**9}, "n_estimators"),
        ("iforest", {"n_estimators": -1}, "n_estimators"),
        ("iforest", {"n_estimators": "100"}, "n_estimators"),
        ("iforest", {"n_estimators": 100.0}, "n_estimators"),
        ("iforest", {"n_estimators": True}, "n_estimators"),
        ("iforest", {"max_features": 0.0}, "max_features"),
        ("gmm", {"reg_covar": math.nan}, "reg_covar"),
        ("gmm", {"covariance_type": "banded"}, "covariance_type"),
        ("knn", {"method": "cosine"}, "method"),
        ("knn", {"max_train": 10**12}, "max_train"),
        ("autoencoder", {"learning_rate": math.inf}, "learning_rate"),
        ("autoencoder", {"max_steps": 10**9}, "max_steps"),
        ("mahalanobis", {"random_state": -3}, "random_state"),
    ],
)
def test_wrong_type_and_absurd_values_are_rejected(name: str, params: dict, bad: str) -> None:
    with pytest.raises(InvalidParamsError) as excinfo:
        validate_params(name, params)
    assert len(excinfo.value.errors) == 1
    assert bad in excinfo.value.errors[0]
    with pytest.raises(InvalidParamsError):
        build(name, params)


def test_all_problems_are_reported_at_once() -> None:
    with pytest.raises(InvalidParamsError) as excinfo:
        validate_params("knn", {"n_neighbors": 0, "method": "max", "k": 3})
    assert len(excinfo.value.errors) == 3
    assert isinstance(excinfo.value, ValueError)


def test_threshold_defaults_and_validation() -> None:
    assert validate_threshold(None) == {"method": "quantile", "q": 0.99}
    assert validate_threshold({"method": "gamma"}) == {"method": "gamma", "q": 0.99}
    assert json.loads(json.dumps(threshold_schema())) == threshold_schema()
    for bad in (
        {"q": 1.0},
        {"q": 0.5},
        {"q": 0.2},
        {"q": "0.99"},
        {"method": "otsu"},
        {"quantile": 0.9},
    ):
        with pytest.raises(InvalidParamsError):
            validate_threshold(bad)


def test_threshold_settings_are_not_algorithm_params() -> None:
    with pytest.raises(InvalidParamsError) as excinfo:
        build("iforest", {"threshold_q": 0.9})
    assert "threshold_q" in excinfo.value.errors[0]


def test_build_applies_params_and_threshold() -> None:
    detector = build("knn", {"n_neighbors": 7}, {"method": "gamma", "q": 0.95})
    assert detector.get_params() == {
        "n_neighbors": 7,
        "method": "mean",
        "max_train": 10_000,
        "random_state": 0,
        "threshold_method": "gamma",
        "threshold_q": 0.95,
    }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sklearn_clone_and_set_params(name: str) -> None:
    detector = build(name, {"random_state": 3}, {"q": 0.95})
    copy = clone(detector)
    assert copy is not detector
    assert copy.get_params() == detector.get_params()
    assert copy.set_params(random_state=4).random_state == 4
    assert detector.random_state == 3


def test_values_set_after_construction_are_validated_at_fit() -> None:
    detector = build("iforest", {}).set_params(n_estimators=10**9)
    with pytest.raises(InvalidParamsError):
        detector.fit(gaussian(200, seed=0))
    detector = build("iforest", {}).set_params(threshold_q=1.5)
    with pytest.raises(InvalidParamsError):
        detector.fit(gaussian(200, seed=0))
