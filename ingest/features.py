"""Built-in embeddings the server can compute from raw audio.

``logmel-v1`` and the kinds built on it below are public contracts: sensors may compute them
on-device and send the vectors instead of audio, so the definitions below are normative. A
conforming implementation agrees with :func:`embed` to
``numpy.allclose(a, b, rtol=1e-5, atol=1e-5)``.

logmel-v1 (dim 128, 16 kHz, 1.0 s windows, 1.0 s hop)
-----------------------------------------------------
Input: PCM samples as floats in [-1, 1] (integer PCM scaled the way libsndfile does, e.g.
int16 / 32768), shape ``(n,)`` or ``(n, channels)``, at any sample rate. All arithmetic
below is float64; only the final vector is rounded to float32.

1. Downmix: arithmetic mean over channels, *before* resampling.
2. Resample the whole signal to 16000 Hz with
   ``librosa.resample(y, orig_sr=sr, target_sr=16000, res_type="soxr_hq")``
   (librosa 0.11, python-soxr; output length ``ceil(n * 16000 / sr)``). Skipped when
   ``sr == 16000``.
3. Windows: non-overlapping blocks of 16000 samples starting at sample 0; window ``k``
   covers samples ``[16000*k, 16000*(k+1))`` and so starts ``k`` seconds after the first
   sample. A trailing partial window is dropped.
4. Per window, independently (no state crosses windows, so a streaming client that
   embeds window by window gets the same vectors)::

       S = librosa.feature.melspectrogram(
           y=window, sr=16000, n_fft=1024, hop_length=512, win_length=1024,
           window="hann", center=False, power=2.0, n_mels=64, fmin=0.0, fmax=8000.0,
           htk=False, norm="slaney")                  # shape (64, 30): 30 frames
       L = librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=None)
         # i.e. L = 10 * log10(max(S, 1e-10)), no clipping relative to the peak

5. Vector: ``concat(L.mean(axis=1), L.std(axis=1))`` (population std, ddof=0): 64 band
   means followed by 64 band standard deviations, in mel-band order (low to high), as
   float32.

logmel-v1-h250 (dim 128, 16 kHz, 1.0 s windows, 0.25 s hop)
-----------------------------------------------------------
logmel-v1 vectors of overlapping windows, for sound event detection: a 1 s hop places an
event onset only to the nearest second, a 0.25 s hop to about +-0.125 s. Identical to
logmel-v1 except step 3: window ``k`` covers samples ``[4000*k, 4000*k + 16000)`` and so
starts ``k / 4`` seconds after the first sample; windows that would run past the end are
dropped. Four times the windows (and storage) of logmel-v1 per second of audio.

logmel-gwrp-v1 (dim 192, 16 kHz, 1.0 s windows, 1.0 s hop)
-----------------------------------------------------------
Pooled log-mel frames after Global Weighted Ranking Pooling (GWRP; the front-end of
TWFR-GMM, Guan et al. 2023): per band, how loud its loudest frames and how quiet its
quietest frames are, beside the mean. Steps 1-4 are logmel-v1's (same windows, resampling
and ``L`` of shape (64, 30)); step 5 becomes, with ``r = 0.9`` and 30 frames::

       w = r ** arange(30);  w = w / w.sum()          # weights of the ranked frames
       asc  = sort(L, axis=1)                          # each band's frames, quietest first
       desc = asc[:, ::-1]                             # loudest first
       vector = concat(L.mean(axis=1), desc @ w, asc @ w)

i.e. ``GWRP(x; r) = sum_i r^(i-1) x_(i) / sum_i r^(i-1)`` over a band's frames ranked
``x_(1), x_(2), ...``: the mean (GWRP with r = 1), then the loudest-first pooling (weight
on the loudest frames: impulses shorter than the second), then the quietest-first pooling
(the band's floor), each 64 values in mel-band order, as float32. For every band
``asc @ w <= mean <= desc @ w``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import librosa
import numpy as np

LOGMEL_V1 = "logmel-v1"
LOGMEL_V1_H250 = "logmel-v1-h250"
LOGMEL_GWRP_V1 = "logmel-gwrp-v1"
GWRP_R = 0.9  # logmel-gwrp-v1's decay over ranked frames (TWFR-GMM's usual range is 0.9-1)
# What a sensor created without `embedding` gets: the kind that held best in BENCHMARKS.md
# (robustness section; pooled variants measured there did no better under noise).
RECOMMENDED = LOGMEL_V1
RESAMPLE_TYPE = "soxr_hq"
_BLOCK = 256  # overlapping windows embedded per librosa call


@dataclass(frozen=True)
class EmbeddingSpec:
    """Shape and timing of one embedding kind."""

    kind: str
    dim: int
    sample_rate: int
    window_s: float
    hop_s: float

    @property
    def window_samples(self) -> int:
        return round(self.window_s * self.sample_rate)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_s * self.sample_rate)


EMBEDDINGS: dict[str, EmbeddingSpec] = {
    LOGMEL_V1: EmbeddingSpec(kind=LOGMEL_V1, dim=128, sample_rate=16000, window_s=1.0, hop_s=1.0),
    LOGMEL_V1_H250: EmbeddingSpec(kind=LOGMEL_V1_H250, dim=128, sample_rate=16000,
                                  window_s=1.0, hop_s=0.25),
    LOGMEL_GWRP_V1: EmbeddingSpec(kind=LOGMEL_GWRP_V1, dim=192, sample_rate=16000,
                                  window_s=1.0, hop_s=1.0),
}


# Learned fleet embeddings (docs/fleet_embedding.md): `fleet-v<N>` is version N of the
# fleet embedding network, 64-d, on logmel-v1's window grid (16 kHz, 1 s windows, 1 s hop).
# The server computes them with the version's weights (service.fleet.kinds); a sensor with
# the version's ONNX export (ingest.fleet_onnx).
FLEET_PREFIX = "fleet-v"
FLEET_DIM = 64
_FLEET_KIND = re.compile(r"^fleet-v([1-9][0-9]{0,8})$")


def fleet_version(kind: str) -> int | None:
    """N of a `fleet-v<N>` kind, else None."""
    found = _FLEET_KIND.match(kind)
    return int(found.group(1)) if found else None


def spec_of(kind: str) -> EmbeddingSpec | None:
    """Shape and timing of a kind the server computes from audio (None: the sensor's own)."""
    if fleet_version(kind) is not None:
        return EmbeddingSpec(kind=kind, dim=FLEET_DIM, sample_rate=16000, window_s=1.0,
                             hop_s=1.0)
    return EMBEDDINGS.get(kind)


def is_builtin(kind: str) -> bool:
    """True when the server can compute embeddings of this kind from raw audio (built-in
    kinds and `fleet-v<N>`; whether version N exists is the service's to check)."""
    return spec_of(kind) is not None


def windows_16k(samples: np.ndarray, sr: int) -> np.ndarray:
    """Steps 1-3 of logmel-v1: mono 16 kHz float32 windows ``(n, 16000)`` on its grid (the
    input of the learned fleet embeddings)."""
    y = to_mono_16k(samples, sr)
    n = y.shape[0] // 16000
    return np.ascontiguousarray(y[:n * 16000].reshape(n, 16000), dtype=np.float32)


def _spec(kind: str) -> EmbeddingSpec:
    try:
        return EMBEDDINGS[kind]
    except KeyError:
        known = ", ".join(sorted(EMBEDDINGS))
        raise ValueError(f"unknown built-in embedding kind {kind!r}; built-in: {known}") from None


def _log_mel(windows_16k: np.ndarray) -> np.ndarray:
    """Step 4 of logmel-v1 for mono 16 kHz windows ``(n, 16000)`` (or one ``(16000,)``):
    float64 log-mel frames ``(n, 64, 30)``."""
    samples = EMBEDDINGS[LOGMEL_V1].window_samples
    windows = np.atleast_2d(np.asarray(windows_16k, dtype=np.float64))
    if windows.ndim != 2 or windows.shape[1] != samples:
        raise ValueError(f"expected windows of shape (n, {samples}), got {windows.shape}")
    if windows.shape[0] == 0:
        return np.empty((0, 64, 30))
    # One call for all windows: librosa treats the leading axis as a batch of signals.
    mel = librosa.feature.melspectrogram(
        y=windows,
        sr=16000,
        n_fft=1024,
        hop_length=512,
        win_length=1024,
        window="hann",
        center=False,
        power=2.0,
        n_mels=64,
        fmin=0.0,
        fmax=8000.0,
        htk=False,
        norm="slaney",
    )
    return np.asarray(librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None))


def embed_windows(windows_16k: np.ndarray) -> np.ndarray:
    """logmel-v1 vectors for already resampled, mono 16 kHz windows.

    ``windows_16k`` has shape ``(n_windows, 16000)`` (a single window of shape ``(16000,)``
    is accepted too); returns float32 ``(n_windows, 128)``. This is steps 4-5 of the spec,
    for clients that resample a stream themselves and embed each window as it completes.
    """
    log_mel = _log_mel(windows_16k)
    stats = np.concatenate([log_mel.mean(axis=-1), log_mel.std(axis=-1)], axis=-1)
    return stats.astype(np.float32)


def gwrp_weights(n: int, r: float) -> np.ndarray:
    """GWRP's weights of `n` ranked values, ``r^(i-1)`` normalised to sum to 1."""
    weights = r ** np.arange(n, dtype=np.float64)
    return np.asarray(weights / weights.sum())


def embed_windows_gwrp(windows_16k: np.ndarray) -> np.ndarray:
    """logmel-gwrp-v1 vectors (float32 ``(n_windows, 192)``) for mono 16 kHz windows, as
    :func:`embed_windows` does for logmel-v1."""
    log_mel = _log_mel(windows_16k)
    ascending = np.sort(log_mel, axis=-1)  # one sort serves both rankings
    weights = gwrp_weights(log_mel.shape[-1], GWRP_R)
    pooled = [log_mel.mean(axis=-1), ascending[..., ::-1] @ weights, ascending @ weights]
    return np.concatenate(pooled, axis=-1).astype(np.float32)


# Steps 4-5 of each built-in kind: mono 16 kHz windows -> vectors.
WINDOW_EMBEDDERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    LOGMEL_V1: embed_windows, LOGMEL_V1_H250: embed_windows,
    LOGMEL_GWRP_V1: embed_windows_gwrp}


def to_mono_16k(samples: np.ndarray, sr: int) -> np.ndarray:
    """Steps 1-2 of the spec: channel-mean downmix, then resample to 16 kHz (float64)."""
    y = np.asarray(samples, dtype=np.float64)
    if y.ndim == 2:
        y = y.mean(axis=1)
    elif y.ndim != 1:
        raise ValueError(f"samples must have shape (n,) or (n, channels), got {y.shape}")
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    target = EMBEDDINGS[LOGMEL_V1].sample_rate
    if sr == target:
        return y
    return np.asarray(librosa.resample(y, orig_sr=sr, target_sr=target, res_type=RESAMPLE_TYPE))


def _embed_overlapping(y: np.ndarray, spec: EmbeddingSpec,
                       embed_block: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Vectors of windows starting every `spec.hop_samples`, embedded a block at a time:
    overlapping windows copied out at once would take hop/window times the audio's memory
    (and librosa's STFT of them several times more)."""
    if y.shape[0] < spec.window_samples:
        return np.empty((0, spec.dim), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(y, spec.window_samples)[:: spec.hop_samples]
    return np.concatenate([embed_block(np.ascontiguousarray(frames[i:i + _BLOCK]))
                           for i in range(0, frames.shape[0], _BLOCK)])


def embed(samples: np.ndarray, sr: int, kind: str = LOGMEL_V1) -> np.ndarray:
    """Embed a whole clip: float32 ``(n_windows, dim)``, window ``k`` starting at
    ``k * hop_s`` seconds (``k`` s for logmel-v1 and logmel-gwrp-v1).

    Audio shorter than one window gives zero rows; callers that need at least one window
    (the upload endpoint) check the duration first.
    """
    spec = _spec(kind)
    embed_block = WINDOW_EMBEDDERS[kind]
    y = to_mono_16k(samples, sr)
    if spec.hop_samples != spec.window_samples:
        return _embed_overlapping(y, spec, embed_block)
    n_windows = y.shape[0] // spec.window_samples
    # A reshape of a contiguous prefix is a view: no copy before librosa frames it again.
    windows = np.ascontiguousarray(y[: n_windows * spec.window_samples])
    return embed_block(windows.reshape(n_windows, spec.window_samples))
