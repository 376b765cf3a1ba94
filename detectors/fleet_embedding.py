"""The learned fleet embedding as a deployable model: a fitted
:class:`detectors.embedding_net.EmbeddingNet` turned into one torch module that maps
**waveforms** (``(batch, 16000)`` mono 16 kHz float32, one 1 s window each) to
embeddings ``(batch, FLEET_DIM)``, stored as a torch state dict (never a pickle) and
exported to ONNX so a sensor computes the same vectors on the device.

The front end is part of the module: the STFT is a strided 1-D convolution with fixed
Hann-windowed cosine and sine kernels (exactly torch.stft's ``center=False`` periodic-Hann
frames, in plain Conv/Mul/Add/MatMul/Log operators that every ONNX runtime has), then
librosa's Slaney mel filterbank (40 bands) and 10*log10 with a 1e-10 floor: the front end
:func:`detectors.audio_nets.mel_power` + ``to_db`` the network was trained on. A client
only resamples to 16 kHz, downmixes and cuts 1 s windows (logmel-v1 steps 1-3).
"""

from __future__ import annotations

import io
import math
import warnings
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from .audio_nets import AMIN, HOP, N_FFT, SAMPLE_RATE, SmallCNN, _filterbank
from .embedding_net import EmbeddingNet
from .errors import ArtifactError

FLEET_DIM = 64
FLEET_WIDTH = 16  # the network's first-layer channels (a fine-tuned cnn must match)
WINDOW_SAMPLES = SAMPLE_RATE  # 1 s windows, 1 s hop
FORMAT = "earshot-fleet-embedding-1"
_BATCH = 256


class LogMelFrontEnd(nn.Module):
    """``(batch, samples)`` -> log-mel dB ``(batch, 40, frames)``."""

    def __init__(self) -> None:
        super().__init__()
        n = torch.arange(N_FFT, dtype=torch.float64)
        k = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)[:, None]
        window = 0.5 - 0.5 * torch.cos(2 * math.pi * n / N_FFT)  # periodic Hann
        angle = 2 * math.pi * k * n / N_FFT
        kernels = torch.cat([torch.cos(angle) * window, -torch.sin(angle) * window])
        self.kernels: torch.Tensor
        self.mel: torch.Tensor
        self.register_buffer("kernels", kernels.float()[:, None, :])
        self.register_buffer("mel", _filterbank().clone())
        self.bins = N_FFT // 2 + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = nn.functional.conv1d(x.unsqueeze(1), self.kernels, stride=HOP)
        power = spec[:, :self.bins] ** 2 + spec[:, self.bins:] ** 2
        mel = torch.matmul(self.mel, power)
        return torch.log(torch.clamp(mel, min=AMIN)) * (10.0 / math.log(10.0))


class WaveformEmbedder(nn.Module):
    """Waveform windows -> fleet embedding (eval mode)."""

    def __init__(self, network: SmallCNN) -> None:
        super().__init__()
        self.front = LogMelFrontEnd()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.network.embed(self.front(x))
        return out


def embedder_of(net: EmbeddingNet) -> WaveformEmbedder:
    module = WaveformEmbedder(net.net_.module_)
    return module.eval()


def embed(module: WaveformEmbedder, windows: NDArray[Any]) -> NDArray[np.float32]:
    """``(n, 16000)`` mono 16 kHz windows -> ``(n, FLEET_DIM)`` float32."""
    windows = np.asarray(windows, dtype=np.float32)
    if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
        raise ValueError(f"expected windows of shape (n, {WINDOW_SAMPLES}), got "
                         f"{windows.shape}")
    torch.set_num_threads(1)
    parts = []
    with torch.no_grad():
        for lo in range(0, len(windows), _BATCH):
            parts.append(module(torch.as_tensor(windows[lo:lo + _BATCH])).numpy())
    return np.concatenate(parts).astype(np.float32) if parts else \
        np.empty((0, FLEET_DIM), np.float32)


def _payload(module: SmallCNN, width: int, embedding_dim: int) -> dict[str, Any]:
    """A network's weights and shape: tensors and plain values only."""
    return {"format": FORMAT, "width": width, "embedding_dim": embedding_dim,
            "n_classes": int(module.head.out_features),
            "state": {k: v.detach().clone() for k, v in module.state_dict().items()}}


def _embedder(payload: dict[str, Any]) -> WaveformEmbedder:
    network = SmallCNN(payload["n_classes"], payload["width"], payload["embedding_dim"])
    network.load_state_dict(payload["state"])
    return WaveformEmbedder(network).eval()


def dump(net: EmbeddingNet) -> bytes:
    """The network's weights and shape as a torch file (tensors and plain values only)."""
    buffer = io.BytesIO()
    torch.save(_payload(net.net_.module_, net.width, net.embedding_dim), buffer)
    return buffer.getvalue()


def load(blob: bytes) -> WaveformEmbedder:
    """The embedder of a :func:`dump` blob (``weights_only``: no code runs on load)."""
    try:
        payload = torch.load(io.BytesIO(blob), weights_only=True)
    except Exception as exc:
        raise ArtifactError(f"not a fleet embedding artifact: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ArtifactError("not a fleet embedding artifact (format)")
    return _embedder(payload)


def to_onnx(module: WaveformEmbedder) -> bytes:
    """ONNX (opset 17) of the waveform -> embedding module, batch axis dynamic."""
    buffer = io.BytesIO()
    example = torch.zeros(1, WINDOW_SAMPLES)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, still exact
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(module.eval(), (example,), buffer,  # type: ignore[arg-type]
                          input_names=["audio"],
                          output_names=["embedding"], opset_version=17, dynamo=False,
                          dynamic_axes={"audio": {0: "batch"}, "embedding": {0: "batch"}})
    return buffer.getvalue()


class FleetPretrained:
    """A stored fleet embedding version as the ``pretrained`` of
    :class:`detectors.cnn.CNNClassifier` (fine-tuning: ``copy_body_to``) and the
    ``embedding`` of :class:`detectors.embedding_net.LinearOnEmbedding` (``embed``): the
    two transfer options of the `cnn` classifier. Pickles with the classifier it serves."""

    def __init__(self, module: WaveformEmbedder, version: int) -> None:
        self.module, self.version = module, version
        self.width = int(module.network.state_dict()["body.0.weight"].shape[0])
        self.embedding_dim = int(module.network.head.in_features)

    def __getstate__(self) -> dict[str, Any]:
        # The network's weights only: the front end's fixed STFT kernels (4 MB, rebuilt
        # the same by LogMelFrontEnd()) would otherwise be pickled with every classifier
        # that starts from this version, once per fold-ensemble member.
        network: SmallCNN = self.module.network
        return {"version": self.version,
                "network": _payload(network, self.width, self.embedding_dim)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "network" not in state:  # a pickle from before holds the whole module
            self.__dict__.update(state)
            return
        payload = state["network"]
        self.module, self.version = _embedder(payload), state["version"]
        self.width, self.embedding_dim = payload["width"], payload["embedding_dim"]

    def embed(self, X: Any) -> NDArray[np.float32]:
        """``(n, 16000)`` clips (the classifier's 1 s windows) -> ``(n, 64)``."""
        return embed(self.module, np.asarray(X))

    def copy_body_to(self, module: SmallCNN) -> None:
        state = {k: v for k, v in self.module.network.state_dict().items()
                 if not k.startswith("head.")}
        try:
            result = module.load_state_dict(state, strict=False)
        except RuntimeError as exc:
            raise ValueError(f"the cnn does not match fleet embedding v{self.version} "
                             f"(width {self.width}): set width {self.width}: {exc}") from None
        if result.unexpected_keys or [k for k in result.missing_keys
                                      if not k.startswith("head.")]:
            raise ValueError(f"the cnn does not match fleet embedding v{self.version}")
