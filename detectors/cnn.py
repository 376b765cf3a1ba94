"""`cnn`: a small convolutional network on log-mel spectrograms of audio clips, as a
scikit-learn classifier (skorch underneath: the training loop and early stopping with the
best epoch restored are skorch's; a pickle keeps only the network's weights).

``fit(X, y, groups=None)``: X is ``(n, samples)`` mono 16 kHz float audio of one length
(see :mod:`detectors.audio_nets`), y the class of each clip, groups the recording each clip
comes from. By default every clip trains for ``max_epochs`` of a cosine learning-rate
schedule (measured better on ESC-10 than holding clips out). With ``validation_fraction``
> 0 a grouped, stratified part of the clips is held out for early stopping, so a
recording never straddles training and validation (neighbouring windows of one recording
are near-copies: a random split would stop on a flattering validation loss). Fixed seeds,
one thread, and a training time cap that raises :class:`TrainingTimeExceeded` instead of
running on.
"""

from __future__ import annotations

import time
from typing import Any, Self

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback, EarlyStopping, LRScheduler
from skorch.dataset import Dataset
from skorch.helper import predefined_split

from .audio_nets import N_MELS, Augment, SmallCNN, TrainCollate, eval_collate, mel_power
from .errors import DetectorError

# A window quieter than this (RMS, full scale 1) is digital silence: below 16-bit
# quantisation noise (~2e-5 dithered), so no microphone signal. It carries no class: it is
# left out of training and predicted as the uniform distribution (no evidence).
SILENT_RMS = 1e-5
# The pickled state's key for the network weights (see CNNClassifier.__getstate__).
_WEIGHTS = "_net_weights"


def silent(clips: NDArray[Any]) -> NDArray[np.bool_]:
    """Which clips ``(n, samples)`` are digital silence."""
    rms = np.sqrt(np.mean(np.square(clips, dtype=np.float64), axis=1))
    return np.asarray(rms < SILENT_RMS)


class TrainingTimeExceeded(DetectorError, RuntimeError):
    """A network did not finish training within its time cap."""


class TimeCap(Callback):
    """Stops a fit that runs longer than `seconds` with an error that says what to change."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what

    def on_train_begin(self, net: Any, **_: Any) -> None:
        self.started_ = time.perf_counter()

    def on_batch_end(self, net: Any, **_: Any) -> None:
        elapsed = time.perf_counter() - self.started_
        if elapsed > self.seconds:
            raise TrainingTimeExceeded(
                f"{self.what} training took longer than max_train_seconds={self.seconds:g} "
                f"(stopped in epoch {len(net.history)} after {elapsed:.0f} s); label fewer "
                "or shorter ranges, lower max_epochs, or raise max_train_seconds")


def grouped_holdout(y: NDArray[Any], groups: NDArray[Any], fraction: float, seed: int
                    ) -> tuple[NDArray[np.intp], NDArray[np.intp]] | None:
    """(train rows, validation rows) with whole groups on one side and every class in
    both, or None when some class has fewer than 2 groups to split."""
    per_class = min(np.unique(groups[y == c]).size for c in np.unique(y))
    if fraction <= 0 or per_class < 2:
        return None
    folds = max(2, round(1 / fraction))
    splitter = StratifiedGroupKFold(n_splits=min(folds, per_class), shuffle=True,
                                    random_state=seed)
    train, valid = next(splitter.split(np.zeros(len(y)), y, groups))
    return train, valid


def make_net(module_kwargs: dict[str, Any], params: dict[str, Any], n_classes: int,
             holdout: Dataset | None, what: str) -> NeuralNetClassifier:
    """The skorch wrapper both networks train with (one place for loop settings)."""
    monitor = "valid_loss" if holdout is not None else "train_loss"
    return NeuralNetClassifier(
        SmallCNN, module__n_classes=n_classes, **{f"module__{k}": v for k, v in
                                                   module_kwargs.items()},
        criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.AdamW,
        lr=params["lr"], optimizer__weight_decay=params["weight_decay"],
        batch_size=params["batch_size"], max_epochs=params["max_epochs"],
        train_split=predefined_split(holdout) if holdout is not None else None,
        iterator_train__shuffle=True,
        iterator_train__collate_fn=TrainCollate(params["augment"], n_classes,
                                                params["random_state"]),
        iterator_valid__collate_fn=eval_collate,
        # Cosine decay over max_epochs: large steps early, fine ones late; converges in
        # fewer epochs than a constant rate on these small sets.
        callbacks=[LRScheduler(policy=torch.optim.lr_scheduler.CosineAnnealingLR,
                               T_max=params["max_epochs"]),
                   EarlyStopping(monitor=monitor, patience=params["patience"],
                                 load_best=True),
                   TimeCap(params["max_train_seconds"], what)],
        device="cpu", verbose=0)


class CNNClassifier(ClassifierMixin, BaseEstimator):
    """Log-mel CNN sound classifier; ``pretrained`` (a fitted
    :class:`detectors.embedding_net.EmbeddingNet`) starts from its weights (fine-tuning)."""

    accepts_groups = True  # the trainer passes recording groups to fit

    def __init__(self, max_epochs: int = 30, patience: int = 10, batch_size: int = 32,
                 lr: float = 3e-3, weight_decay: float = 1e-3, width: int = 16,
                 embedding_dim: int = 64, dropout: float = 0.3, gain_db: float = 0.0,
                 time_shift: bool = True, background: float = 0.0, freq_mask: int = 0,
                 time_mask: int = 0, mixup: float = 0.0, validation_fraction: float = 0.0,
                 max_train_seconds: float = 900.0, random_state: int = 0,
                 pretrained: Any = None, n_mels: int = N_MELS) -> None:
        self.max_epochs, self.patience, self.batch_size = max_epochs, patience, batch_size
        self.lr, self.weight_decay, self.width = lr, weight_decay, width
        self.embedding_dim, self.dropout, self.gain_db = embedding_dim, dropout, gain_db
        self.time_shift, self.background, self.freq_mask = time_shift, background, freq_mask
        self.time_mask, self.mixup = time_mask, mixup
        self.validation_fraction = validation_fraction
        self.max_train_seconds, self.random_state = max_train_seconds, random_state
        self.pretrained, self.n_mels = pretrained, n_mels

    def augment(self) -> Augment:
        return Augment(gain_db=self.gain_db, shift=self.time_shift,
                       background=self.background, freq_mask=self.freq_mask,
                       time_mask=self.time_mask, mixup=self.mixup)

    def _loop_params(self) -> dict[str, Any]:
        return {"lr": self.lr, "weight_decay": self.weight_decay,
                "batch_size": self.batch_size, "max_epochs": self.max_epochs,
                "patience": self.patience, "augment": self.augment(),
                "random_state": self.random_state,
                "max_train_seconds": self.max_train_seconds}

    def _make_net(self, holdout: Dataset | None) -> NeuralNetClassifier:
        return make_net({"width": self.width, "embedding_dim": self.embedding_dim,
                         "dropout": self.dropout}, self._loop_params(), self.classes_.size,
                        holdout, "cnn")

    def fit(self, X: ArrayLike, y: ArrayLike, groups: ArrayLike | None = None) -> Self:
        started = time.perf_counter()
        clips = np.asarray(X)
        power = mel_power(clips, self.n_mels)
        y_arr = np.asarray(y).astype(str)
        if y_arr.shape != (power.shape[0],):
            raise ValueError(f"y must hold one class per clip: {y_arr.shape} for "
                             f"{power.shape[0]} clips")
        self.classes_, codes = np.unique(y_arr, return_inverse=True)
        if self.classes_.size < 2:
            raise ValueError("a classifier needs at least two classes")
        g = np.arange(len(codes)) if groups is None else np.asarray(groups)
        sound = ~silent(clips)
        if np.unique(codes[sound]).size == self.classes_.size:  # else keep all: no class lost
            power, codes, g = power[sound], codes[sound], g[sound]
        torch.manual_seed(self.random_state)
        torch.set_num_threads(1)
        split = grouped_holdout(codes, g, self.validation_fraction, self.random_state)
        holdout = None if split is None else Dataset(power[split[1]], codes[split[1]])
        rows = np.arange(len(codes)) if split is None else split[0]
        self.net_ = self._make_net(holdout)
        self.net_.initialize()
        if self.pretrained is not None:
            self.pretrained.copy_body_to(self.net_.module_)
        self.net_.partial_fit(power[rows], codes[rows].astype(np.int64))
        self.n_epochs_ = len(self.net_.history)
        self.validated_ = split is not None
        self.fit_seconds_ = time.perf_counter() - started
        return self

    def __getstate__(self) -> dict[str, Any]:
        # A pickle (the classifier artifact, k + 1 of them in a fold ensemble) keeps what
        # prediction needs: the network's weights and buffers, not the skorch wrapper,
        # whose AdamW moments (twice the weights, once more through the LR scheduler
        # callback), early-stopping copy of the best weights and per-batch history
        # made a network's artifact ~5x its weights. The fitted object in memory keeps
        # them (the fleet embedding reads the history after fit).
        state = dict(super().__getstate__())
        net = state.pop("net_", None)
        if net is not None:
            state[_WEIGHTS] = {k: v.detach().clone()
                               for k, v in net.module_.state_dict().items()}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.pop(_WEIGHTS, None)
        super().__setstate__(state)  # a pickle from before keeps its whole net_
        if weights is not None:
            self.net_ = self._make_net(None)
            # initialize() draws starting weights (overwritten below) from torch's global
            # generator: loading a model must not move another fit's seeded stream.
            with torch.random.fork_rng(devices=[]):
                self.net_.initialize()
            self.net_.module_.load_state_dict(weights)

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "net_")
        torch.set_num_threads(1)
        clips = np.asarray(X)
        probs = np.asarray(self.net_.predict_proba(mel_power(clips, self.n_mels)),
                           dtype=np.float64)
        probs[silent(clips)] = 1.0 / self.classes_.size
        return probs

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])
