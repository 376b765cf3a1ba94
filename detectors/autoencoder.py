"""Dense autoencoder detector (PyTorch); score = mean squared reconstruction error.

Training is bounded by optimiser steps, not epochs: minibatches are drawn with
replacement, so 50 windows and 1M windows cost the same ``max_steps`` at most, and
training stops earlier once the loss has converged (relative improvement below ``tol``
for ``patience`` steps).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .base import BaseDetector, FloatArray, max_train_spec
from .params import DEFAULT_THRESHOLD_METHOD, DEFAULT_THRESHOLD_Q, ParamSpec

# Loss is averaged over this many steps before convergence is judged, because single
# minibatch losses are too noisy to compare.
CHECK_EVERY = 25
_SCORE_CHUNK = 65_536


@contextmanager
def torch_threads(n_threads: int) -> Iterator[None]:
    """Limit torch's intra-op threads for the duration, restoring the previous value."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads if n_threads > 0 else min(2, os.cpu_count() or 1))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def build_network(n_features: int, hidden_size: int, latent_size: int) -> nn.Sequential:
    """Symmetric dense autoencoder n_features -> hidden -> latent -> hidden -> n_features."""
    return nn.Sequential(
        nn.Linear(n_features, hidden_size),
        nn.ReLU(),
        nn.Linear(hidden_size, latent_size),
        nn.ReLU(),
        nn.Linear(latent_size, hidden_size),
        nn.ReLU(),
        nn.Linear(hidden_size, n_features),
    )


class AutoencoderDetector(BaseDetector):
    """Windows the autoencoder reconstructs poorly are anomalous."""

    name: ClassVar[str] = "autoencoder"
    description: ClassVar[str] = (
        "Dense autoencoder (PyTorch, CPU); score is the mean squared reconstruction "
        "error. Learns non-linear structure; training is bounded by max_steps."
    )
    param_specs: ClassVar[tuple[ParamSpec, ...]] = (
        ParamSpec("hidden_size", int, 64, "Width of the hidden layers.", min=4, max=2048),
        ParamSpec(
            "latent_size",
            int,
            8,
            "Bottleneck width (capped at half the embedding dimension so it compresses).",
            min=1,
            max=512,
        ),
        ParamSpec("learning_rate", float, 1e-3, "Adam learning rate.", min=1e-6, max=1.0),
        ParamSpec("batch_size", int, 128, "Windows per minibatch.", min=8, max=8192),
        ParamSpec("max_steps", int, 1000, "Upper bound on optimiser steps.", min=10, max=100_000),
        ParamSpec(
            "patience",
            int,
            200,
            f"Stop after this many steps without a relative loss improvement of tol "
            f"(judged every {CHECK_EVERY} steps).",
            min=CHECK_EVERY,
            max=100_000,
        ),
        ParamSpec(
            "tol",
            float,
            1e-3,
            "Relative loss improvement that counts as progress.",
            min=0.0,
            max=0.5,
        ),
        ParamSpec(
            "n_threads",
            int,
            1,
            "Torch CPU threads; 0 means min(2, CPU cores). Default 1: layers this small gain "
            "nothing from intra-op threads, and on a busy 2-core host a second thread made "
            "training 5-20x slower (threads spin waiting for each other).",
            min=0,
            max=64,
        ),
        max_train_spec(200_000, "max_steps x batch_size windows are seen at most anyway."),
    )

    def __init__(
        self,
        hidden_size: int = 64,
        latent_size: int = 8,
        learning_rate: float = 1e-3,
        batch_size: int = 128,
        max_steps: int = 1000,
        patience: int = 200,
        tol: float = 1e-3,
        n_threads: int = 1,
        max_train: int = 200_000,
        random_state: int = 0,
        threshold_method: str = DEFAULT_THRESHOLD_METHOD,
        threshold_q: float = DEFAULT_THRESHOLD_Q,
    ) -> None:
        self.hidden_size = hidden_size
        self.latent_size = latent_size
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.patience = patience
        self.tol = tol
        self.n_threads = n_threads
        self.max_train = max_train
        self.random_state = random_state
        self.threshold_method = threshold_method
        self.threshold_q = threshold_q

    def _fit_model(self, Z: FloatArray) -> nn.Sequential:
        data = torch.from_numpy(np.ascontiguousarray(Z, dtype=np.float32))
        latent = min(self.latent_size, max(1, Z.shape[1] // 2))
        # fork_rng keeps the caller's global torch RNG untouched by our seeding.
        with torch_threads(self.n_threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            net = build_network(Z.shape[1], self.hidden_size, latent)
            self.n_steps_, self.final_loss_ = self._train(net, data)
        return net.eval()

    def _train(self, net: nn.Sequential, data: torch.Tensor) -> tuple[int, float]:
        optimiser = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        batch = min(self.batch_size, data.shape[0])
        best, stale_steps, window_loss, mean_loss = math.inf, 0, 0.0, math.inf
        net.train()
        for step in range(1, self.max_steps + 1):
            rows = torch.randint(0, data.shape[0], (batch,))
            loss = nn.functional.mse_loss(net(data[rows]), data[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            window_loss += float(loss.item())
            if step % CHECK_EVERY:
                continue
            mean_loss, window_loss = window_loss / CHECK_EVERY, 0.0
            if mean_loss < best * (1 - self.tol):
                best, stale_steps = mean_loss, 0
            else:
                stale_steps += CHECK_EVERY
            if stale_steps >= self.patience:
                break
        return step, mean_loss

    def _score(self, Z: FloatArray) -> FloatArray:
        data = torch.from_numpy(np.ascontiguousarray(Z, dtype=np.float32))
        errors = []
        with torch_threads(self.n_threads), torch.no_grad():
            for chunk in torch.split(data, _SCORE_CHUNK):
                errors.append(((self.model_(chunk) - chunk) ** 2).mean(dim=1).numpy())
        return np.concatenate(errors).astype(np.float64)
