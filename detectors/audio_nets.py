"""The pieces the audio networks share (:mod:`detectors.cnn`, :mod:`detectors.embedding_net`):
the log-mel front end, a small depthwise-separable strided CNN, and augmentation.

Input contract: clips are fixed-length mono float32 audio at 16 kHz, shape
``(n, samples)`` (the service cuts them from the audio store; the default length is one
1 s window). The front end turns each into a mel power spectrogram once, before
training: every augmentation then works on that spectrogram, so an epoch costs no STFT.

Augmentations (each switchable, applied per training batch, never at prediction):
- gain: the whole clip louder or quieter (a constant in dB on the log-mel);
- time shift: the clip rotated in time (a roll of the frames);
- background mixing: another training clip added at a lower level. Adding mel *power*
  spectrograms is what mixing two uncorrelated signals does on average, so this is the
  waveform mix without a second STFT;
- SpecAugment: one band of mel bins and one run of frames set to the clip's mean;
- mixup: pairs of clips blended with their targets (Beta(a, a) weights).
audiomentations (Gain, Shift, AddBackgroundNoise) works on waveforms and would cost an
STFT per clip per epoch, and its frequency mask is broken in 0.43; the equivalents here
are one line each on the spectrogram.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import librosa
import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

SAMPLE_RATE = 16_000
N_FFT = 1024
HOP = 512  # 32 ms: 30 frames per 1 s window, as logmel-v1
N_MELS = 40
AMIN = 1e-10
_STFT_BATCH = 256


@functools.cache
def _filterbank(n_mels: int = N_MELS) -> torch.Tensor:
    return torch.as_tensor(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels),
                           dtype=torch.float32)


def mel_power(clips: NDArray[Any], n_mels: int = N_MELS) -> NDArray[np.float32]:
    """``(n, samples)`` mono 16 kHz -> mel power spectrograms ``(n, n_mels, frames)``:
    Hann-windowed STFT (no centre padding) and librosa's Slaney mel filterbank, the
    same bands as logmel-v1; torch's STFT is several times faster than librosa's here."""
    clips = np.asarray(clips, dtype=np.float32)
    if clips.ndim != 2 or clips.shape[1] < N_FFT:
        raise ValueError(f"clips must be an array (n, samples) of mono 16 kHz audio with at "
                         f"least {N_FFT} samples each, got shape {clips.shape}")
    if not np.isfinite(clips).all():
        raise ValueError("clips hold NaN or infinite samples")
    window = torch.hann_window(N_FFT)
    parts = []
    with torch.no_grad():
        for lo in range(0, len(clips), _STFT_BATCH):
            spec = torch.stft(torch.as_tensor(clips[lo:lo + _STFT_BATCH]), N_FFT, HOP,
                              window=window, center=False, return_complex=True)
            parts.append(torch.matmul(_filterbank(n_mels), spec.abs() ** 2))
    frames = 1 + (clips.shape[1] - N_FFT) // HOP
    if not parts:
        return np.empty((0, n_mels, frames), np.float32)
    return torch.cat(parts).numpy()


def to_db(power: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(power.clamp_min(AMIN))


def _separable(c_in: int, c_out: int) -> nn.Sequential:
    """Depthwise 3x3 then pointwise 1x1 (MobileNet-style): ~8x fewer multiplies than a
    full 3x3 convolution, the kind of block that fits a microcontroller."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
        nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class SmallCNN(nn.Module):
    """Log-mel dB ``(batch, mels, frames)`` -> class logits. ``embed`` is the penultimate
    layer (the learned embedding). Strided first convolution, then depthwise-separable
    blocks with pooling, global average pooling (any clip length works), one hidden layer."""

    def __init__(self, n_classes: int, width: int = 24, embedding_dim: int = 64,
                 dropout: float = 0.3) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(1)  # learns the dB offset and scale of the input
        self.body = nn.Sequential(
            nn.Conv2d(1, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
            nn.ReLU(),
            _separable(width, 2 * width), nn.MaxPool2d(2),
            _separable(2 * width, 3 * width), nn.MaxPool2d(2),
            _separable(3 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
            nn.Linear(4 * width, embedding_dim), nn.ReLU())
        self.head = nn.Linear(embedding_dim, n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(self.norm(x.unsqueeze(1)))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.embed(x))
        return out


@dataclass(frozen=True)
class Augment:
    gain_db: float = 0.0  # +- range
    shift: bool = False
    background: float = 0.0  # probability of mixing in another clip
    background_snr_db: tuple[float, float] = (6.0, 20.0)
    freq_mask: int = 0  # widest masked band, mel bins
    time_mask: int = 0  # longest masked run, frames
    mixup: float = 0.0  # Beta(a, a); 0: off

    @property
    def active(self) -> bool:
        return bool(self.gain_db or self.shift or self.background or self.freq_mask
                    or self.time_mask or self.mixup)


def _mix_background(power: torch.Tensor, augment: Augment, gen: torch.Generator
                    ) -> torch.Tensor:
    n = power.shape[0]
    chosen = torch.rand(n, generator=gen) < augment.background
    if n < 2 or not chosen.any():
        return power
    other = power[torch.randperm(n, generator=gen)]
    lo, hi = augment.background_snr_db
    snr = lo + (hi - lo) * torch.rand(n, generator=gen)
    level = power.mean(dim=(1, 2)) / other.mean(dim=(1, 2)).clamp_min(AMIN)
    weight = torch.where(chosen, level * 10.0 ** (-snr / 10.0), torch.zeros(n))
    return power + weight[:, None, None] * other


def _mask(db: torch.Tensor, width: int, axis: int, gen: torch.Generator) -> torch.Tensor:
    """Each clip's own random run of up to `width` bins (axis 1) or frames (axis 2) set to
    the clip's mean, for the whole batch at once."""
    n, size = db.shape[0], db.shape[axis]
    widths = torch.randint(0, min(width, size - 1) + 1, (n,), generator=gen)
    starts = (torch.rand(n, generator=gen) * (size - widths + 1)).long()
    at = torch.arange(size)[None, :]
    hit = (at >= starts[:, None]) & (at < (starts + widths)[:, None])
    hit = hit[:, :, None] if axis == 1 else hit[:, None, :]
    return torch.where(hit, db.mean(dim=(1, 2), keepdim=True), db)


def _roll(db: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Each clip rotated in time by its own random number of frames."""
    n, frames = db.shape[0], db.shape[2]
    shifts = torch.randint(0, frames, (n,), generator=gen)
    index = (torch.arange(frames)[None, :] - shifts[:, None]) % frames
    return torch.gather(db, 2, index[:, None, :].expand(-1, db.shape[1], -1))


def augment_batch(power: torch.Tensor, augment: Augment, gen: torch.Generator
                  ) -> torch.Tensor:
    """Mel power ``(batch, mels, frames)`` -> augmented log-mel dB (mixup aside)."""
    if augment.background:
        power = _mix_background(power, augment, gen)
    db = to_db(power)
    if augment.gain_db:
        db = db + (2 * torch.rand(db.shape[0], 1, 1, generator=gen) - 1) * augment.gain_db
    if augment.shift:
        db = _roll(db, gen)
    if augment.freq_mask:
        db = _mask(db, augment.freq_mask, 1, gen)
    if augment.time_mask:
        db = _mask(db, augment.time_mask, 2, gen)
    return db


def mixup(db: torch.Tensor, targets: torch.Tensor, n_classes: int, alpha: float,
          gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Blend each clip with a random partner; targets become class probabilities."""
    soft = nn.functional.one_hot(targets.long(), n_classes).float()
    if alpha <= 0 or db.shape[0] < 2:
        return db, soft
    lam = torch.distributions.Beta(alpha, alpha).sample((db.shape[0],))
    lam = torch.maximum(lam, 1 - lam)  # the clip keeps the larger share: its label leads
    order = torch.randperm(db.shape[0], generator=gen)
    mixed = lam[:, None, None] * db + (1 - lam[:, None, None]) * db[order]
    return mixed, lam[:, None] * soft + (1 - lam[:, None]) * soft[order]


class TrainCollate:
    """skorch ``iterator_train__collate_fn``: mel power + class index -> augmented dB and
    soft targets. Seeded once, so a fit is reproducible."""

    def __init__(self, augment: Augment, n_classes: int, seed: int) -> None:
        self.augment, self.n_classes, self.seed = augment, n_classes, seed
        self.gen = torch.Generator().manual_seed(seed)

    def __getstate__(self) -> dict[str, Any]:
        # A torch.Generator does not pickle; a loaded model only predicts anyway.
        return {k: v for k, v in self.__dict__.items() if k != "gen"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.gen = torch.Generator().manual_seed(self.seed)

    def __call__(self, batch: Sequence[tuple[Any, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
        power = torch.stack([torch.as_tensor(x) for x, _ in batch])
        targets = torch.as_tensor(np.asarray([y for _, y in batch]))
        db = augment_batch(power, self.augment, self.gen)
        return mixup(db, targets, self.n_classes, self.augment.mixup, self.gen)


def eval_collate(batch: Sequence[tuple[Any, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation and prediction: log-mel dB, no augmentation."""
    power = torch.stack([torch.as_tensor(x) for x, _ in batch])
    targets = torch.as_tensor(np.asarray([0 if y is None else y for _, y in batch]))
    return to_db(power), targets
