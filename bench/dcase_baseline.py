"""The DCASE 2020 Task 2 baseline autoencoder, re-implemented in PyTorch as the reference
for detection quality.

Implemented after the published Keras baseline (dcase2020_task2_baseline: ``common.py``
``file_to_vector_array``, ``keras_model.py``, ``baseline.yaml``):

- Features: ``librosa.feature.melspectrogram(y, sr, n_fft=1024, hop_length=512, n_mels=128,
  power=2.0)`` (librosa defaults otherwise: centred frames, Hann window, Slaney mel),
  ``10 * log10(mel + machine epsilon)``; 5 consecutive frames stacked into one 640-dim
  vector (frame-major), one vector per frame offset.
- Network: Dense(128)-BN-ReLU x4, Dense(8)-BN-ReLU, Dense(128)-BN-ReLU x4, Dense(640).
  Keras defaults kept: Glorot-uniform weights, zero biases, BatchNormalization momentum
  0.99 (torch ``momentum=0.01``) and epsilon 1e-3, Adam lr 0.001 with epsilon 1e-7.
- Training: MSE, 100 epochs, batch 512, shuffled each epoch; like Keras'
  ``validation_split=0.1`` the last 10 % of the training vectors are held out (they are
  only validation data there, so they are not trained on here).
- Clip score: mean over the clip's vectors of the per-vector mean squared error.

Differences, all forced by the setting: audio is the 16 kHz mono signal logmel-v1 sees
(the baseline loaded files as they are; these are 16 kHz already except some BLDC files,
which are downmixed and resampled with soxr_hq); training is capped at
:data:`MAX_TRAIN_SECONDS` (never reached on these small sets: see ``epochs_run``); a final
minibatch of a single vector is dropped because BatchNorm cannot train on one row.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import nn

from bench.common import DATA_DIR, SR, Clip, load_16k
from detectors.autoencoder import torch_threads

N_MELS = 128
FRAMES = 5
N_FFT = 1024
HOP = 512
POWER = 2.0
EPOCHS = 100
BATCH_SIZE = 512
LEARNING_RATE = 1e-3
VALIDATION_SPLIT = 0.1
MAX_TRAIN_SECONDS = 120.0
HIDDEN = (128, 128, 128, 128, 8, 128, 128, 128, 128)


@dataclass(frozen=True)
class BaselineScores:
    """Reconstruction errors of one test clip."""

    frame_errors: np.ndarray  # one per stacked 5-frame vector
    window_errors: np.ndarray  # mean of the vectors centred in each whole 1 s window

    @property
    def clip_score(self) -> float:
        return float(self.frame_errors.mean())


@dataclass(frozen=True)
class TrainInfo:
    vectors: int
    epochs_planned: int
    epochs_run: int
    steps: int
    seconds: float
    final_loss: float


def vector_array(y: np.ndarray) -> np.ndarray:
    """The baseline's ``file_to_vector_array`` on 16 kHz samples: float32 (n, 640)."""
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=N_FFT, hop_length=HOP,
                                         n_mels=N_MELS, power=POWER)
    log_mel = 20.0 / POWER * np.log10(mel + sys.float_info.epsilon)
    if log_mel.shape[1] < FRAMES:
        return np.empty((0, N_MELS * FRAMES), dtype=np.float32)
    # [t, k, m] = log_mel[m, t + k]; flattening (k, m) puts frame k at columns k*128...
    stacked = np.lib.stride_tricks.sliding_window_view(log_mel.T, FRAMES, axis=0)
    return stacked.transpose(0, 2, 1).reshape(-1, N_MELS * FRAMES).astype(np.float32)


def vector_windows(n_vectors: int) -> np.ndarray:
    """The 1 s window each vector belongs to: where its middle (3rd) frame is centred."""
    centre_sample = (np.arange(n_vectors) + FRAMES // 2) * HOP
    return centre_sample // SR


def build_model(dim: int = N_MELS * FRAMES) -> nn.Sequential:
    layers: list[nn.Module] = []
    width_in = dim
    for width in HIDDEN:
        layers += [nn.Linear(width_in, width), nn.BatchNorm1d(width, eps=1e-3, momentum=0.01),
                   nn.ReLU()]
        width_in = width
    layers.append(nn.Linear(width_in, dim))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def batches_per_epoch(n_vectors: int) -> int:
    """Minibatches one epoch of ``n_vectors`` training vectors takes (after the 10 % split)."""
    n_train = n_vectors - math.floor(n_vectors * VALIDATION_SPLIT)
    return max(1, math.ceil(n_train / BATCH_SIZE))


def train(vectors: np.ndarray, seed: int = 0, epochs: int = EPOCHS
          ) -> tuple[nn.Sequential, TrainInfo]:
    """Fit the baseline autoencoder as published (see the module docstring)."""
    n_train = vectors.shape[0] - math.floor(vectors.shape[0] * VALIDATION_SPLIT)
    data = torch.from_numpy(vectors[:n_train])
    start, steps, loss_value, epoch = time.perf_counter(), 0, math.nan, 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(vectors.shape[1])
        optimiser = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, eps=1e-7)
        model.train()
        for epoch in range(1, epochs + 1):  # noqa: B007 (reported after the loop)
            for rows in torch.randperm(n_train).split(BATCH_SIZE):
                if rows.numel() < 2:
                    continue
                loss = nn.functional.mse_loss(model(data[rows]), data[rows])
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                steps, loss_value = steps + 1, float(loss.item())
            if time.perf_counter() - start > MAX_TRAIN_SECONDS:
                break
    info = TrainInfo(n_train, epochs, epoch, steps, time.perf_counter() - start, loss_value)
    return model.eval(), info


def score(model: nn.Sequential, y: np.ndarray) -> BaselineScores:
    vectors = vector_array(y)
    with torch.no_grad():
        data = torch.from_numpy(vectors)
        errors = ((model(data) - data) ** 2).mean(dim=1).numpy().astype(np.float64)
    n_windows = y.shape[0] // SR
    window_of = vector_windows(errors.shape[0])
    window_errors = np.array([errors[window_of == k].mean() for k in range(n_windows)])
    return BaselineScores(errors, window_errors)


def dcase_baseline_scores(
    train_files: Sequence[Clip | str | np.ndarray],
    test_files: Sequence[Clip | str | np.ndarray],
    data_dir: Path = DATA_DIR,
    seed: int = 0,
    min_steps: int = 0,
) -> tuple[list[BaselineScores], TrainInfo]:
    """Train the baseline on ``train_files`` (normal audio) and score every test file.

    Files are paths relative to the data dir (or :class:`Clip` parts of them), or 16 kHz
    samples already loaded (e.g. with noise mixed in). Returns
    one :class:`BaselineScores` per test file, in order, and what training did. The
    published 100 epochs are run; ``min_steps`` adds epochs until at least that many
    optimiser steps are taken (100 epochs of a few clips are only a few hundred steps).
    """
    def load(clip: Clip | str | np.ndarray) -> np.ndarray:
        return clip if isinstance(clip, np.ndarray) else load_16k(clip, data_dir)

    vectors = np.concatenate([vector_array(load(clip)) for clip in train_files])
    epochs = max(EPOCHS, math.ceil(min_steps / batches_per_epoch(vectors.shape[0])))
    # One thread: these layers are too small for two threads to pay off on a shared box.
    with torch_threads(1):
        model, info = train(vectors, seed, epochs)
        scores = [score(model, load(clip)) for clip in test_files]
    return scores, info
