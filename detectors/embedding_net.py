"""A learned audio embedding Earshot trains itself (no pretrained weights can be
downloaded here): the :class:`detectors.cnn.CNNClassifier` network trained on an
*auxiliary* task over every recording held, whose penultimate layer is the embedding.

The auxiliary labels are whatever the caller knows about each clip without an annotator:
the recording it comes from (instance discrimination: works on unlabelled audio), the
machine, section or operating condition, or a class where one is labelled. The network
must tell them apart, so its embedding separates sounds that differ.

One mechanism for two uses:
- sound classes (issue 14): :class:`LinearOnEmbedding` (a logistic regression on the
  embedding: cheap, learns from a handful of labels) and fine-tuning
  (``CNNClassifier(pretrained=net)`` starts from these weights);
- anomaly detection (issue 15): a fleet embedding trained on machine/section/condition,
  scored with a distance or density detector, exportable through :meth:`embedding_module`.

API: ``EmbeddingNet().fit(clips, aux_labels[, groups]).embed(clips) -> (n, d)``.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .audio_nets import SmallCNN, mel_power, to_db
from .cnn import CNNClassifier

EMBED_BATCH = 256


class EmbeddingNet(CNNClassifier):
    """CNNClassifier trained on auxiliary labels; ``embed`` gives the penultimate layer.
    Defaults: milder augmentation and no mixup (the auxiliary classes are many and fine)."""

    def __init__(self, max_epochs: int = 40, patience: int = 6, batch_size: int = 64,
                 lr: float = 3e-3, weight_decay: float = 1e-3, width: int = 16,
                 embedding_dim: int = 64, dropout: float = 0.2, gain_db: float = 6.0,
                 time_shift: bool = True, background: float = 0.3, freq_mask: int = 8,
                 time_mask: int = 12, mixup: float = 0.0, validation_fraction: float = 0.1,
                 max_train_seconds: float = 1800.0, random_state: int = 0,
                 pretrained: Any = None) -> None:
        super().__init__(max_epochs, patience, batch_size, lr, weight_decay, width,
                         embedding_dim, dropout, gain_db, time_shift, background, freq_mask,
                         time_mask, mixup, validation_fraction, max_train_seconds,
                         random_state, pretrained)

    def fit(self, X: ArrayLike, y: ArrayLike, groups: ArrayLike | None = None) -> Self:
        """``X``: clips ``(n, samples)`` mono 16 kHz; ``y``: auxiliary label per clip."""
        return super().fit(X, y, groups)

    def embed(self, X: ArrayLike) -> NDArray[np.float32]:
        """``(n, embedding_dim)`` penultimate-layer activations (eval mode)."""
        check_is_fitted(self, "net_")
        torch.set_num_threads(1)
        module = self.embedding_module()
        power = mel_power(np.asarray(X))
        out = []
        with torch.no_grad():
            for lo in range(0, len(power), EMBED_BATCH):
                out.append(module(to_db(torch.as_tensor(power[lo:lo + EMBED_BATCH]))))
        return torch.cat(out).numpy().astype(np.float32) if out else \
            np.empty((0, self.embedding_dim), np.float32)

    def transform(self, X: ArrayLike) -> NDArray[np.float32]:
        return self.embed(X)

    def embedding_module(self) -> nn.Module:
        """log-mel dB ``(batch, mels, frames)`` -> embedding, in eval mode (for export)."""
        check_is_fitted(self, "net_")
        network: SmallCNN = self.net_.module_
        network.eval()
        return _Embedder(network)

    def copy_body_to(self, module: SmallCNN) -> None:
        """Start `module` (same width and embedding size) from these weights, all but the
        class head."""
        check_is_fitted(self, "net_")
        state = {k: v for k, v in self.net_.module_.state_dict().items()
                 if not k.startswith("head.")}
        try:
            missing = module.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shapes differ: another width or embedding size
            raise ValueError(f"the network does not match the embedding's: {exc}") from None
        if missing.unexpected_keys or [k for k in missing.missing_keys
                                       if not k.startswith("head.")]:
            raise ValueError(f"the network does not match the embedding's: {missing}")


class _Embedder(nn.Module):
    def __init__(self, network: SmallCNN) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network.embed(x)


class LinearOnEmbedding(ClassifierMixin, BaseEstimator):
    """Logistic regression on a fitted :class:`EmbeddingNet`'s embedding of each clip."""

    def __init__(self, embedding: EmbeddingNet | None = None, C: float = 1.0) -> None:
        self.embedding, self.C = embedding, C

    def fit(self, X: ArrayLike, y: ArrayLike, groups: ArrayLike | None = None) -> Self:
        if self.embedding is None:
            raise ValueError("LinearOnEmbedding needs a fitted EmbeddingNet")
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(
            C=self.C, max_iter=2000, class_weight="balanced"))
        self.model_.fit(self.embedding.embed(X), np.asarray(y).astype(str))
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        check_is_fitted(self, "model_")
        assert self.embedding is not None  # fit refused None
        return np.asarray(self.model_.predict_proba(self.embedding.embed(X)), np.float64)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        return np.asarray(self.classes_[self.predict_proba(X).argmax(axis=1)])
