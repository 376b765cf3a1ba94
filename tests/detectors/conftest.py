"""Shared data and helpers for the detectors tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

# Cheaper-than-default settings so the whole suite stays fast on a 2-core machine; the
# defaults themselves are exercised by the real-audio and autoencoder tests.
FAST_PARAMS: dict[str, dict[str, Any]] = {
    "iforest": {"n_estimators": 100},
    "gmm": {},
    "knn": {"max_train": 2000},
    "pca": {},
    "ecod": {},
    "mahalanobis": {},
    "autoencoder": {"max_steps": 300},
    "domain_nn": {},
    "domain_mahalanobis": {},
}

N_FEATURES = 16


@pytest.fixture(autouse=True, scope="package")
def _single_threaded_blas() -> Iterator[None]:
    # On a busy 2-core host, multi-threaded BLAS spins and runs 10x slower than one thread.
    with threadpool_limits(limits=1):
        yield


def gaussian(n: int, seed: int, shift: float = 0.0, n_features: int = N_FEATURES) -> np.ndarray:
    """Correlated Gaussian windows (a fixed random mixing matrix), optionally shifted."""
    mixing = np.random.default_rng(12345).normal(size=(n_features, n_features))
    mixing /= np.sqrt(n_features)
    noise = np.random.default_rng(seed).normal(size=(n, n_features))
    return noise @ mixing + 5.0 + shift
