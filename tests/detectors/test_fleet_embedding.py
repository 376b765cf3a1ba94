"""detectors.fleet_embedding on real ESC-10 audio: the waveform front end inside the
deployable module equals the front end the network trains on (mel_power + to_db), the
stored artifact reloads to the same embedding, and the ONNX export computes it too."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import soundfile as sf
import torch

from detectors import fleet_embedding
from detectors.audio_nets import mel_power, to_db
from detectors.embedding_net import EmbeddingNet
from ingest.features import windows_16k
from tests.conftest import DATA_DIR

CLIPS = ("chainsaw__1-19898-A", "rooster__1-26806-A", "sea_waves__1-28135-A",
         "dog_bark__1-30226-A")


def _windows() -> tuple[np.ndarray, np.ndarray]:
    parts, labels = [], []
    for name in CLIPS:
        samples, rate = sf.read(DATA_DIR / "esc10" / f"esc10__{name}.ogg", dtype="float32",
                                always_2d=True)
        windows = windows_16k(samples, rate)
        parts.append(windows)
        labels += [name.split("__")[0]] * len(windows)
    return np.concatenate(parts), np.asarray(labels)


def test_front_end_equals_the_training_front_end() -> None:
    windows, _ = _windows()
    trained_on = to_db(torch.as_tensor(mel_power(windows))).numpy()
    deployed = fleet_embedding.LogMelFrontEnd()(torch.as_tensor(windows)).detach().numpy()
    assert deployed.shape == trained_on.shape == (len(windows), 40, 30)
    audible = trained_on > -60  # below that a dB difference is float noise on ~nothing
    assert np.abs(deployed - trained_on)[audible].max() < 1e-2


def test_artifact_and_onnx_give_the_networks_embedding() -> None:
    windows, labels = _windows()
    net = EmbeddingNet(max_epochs=2, width=fleet_embedding.FLEET_WIDTH,
                       embedding_dim=fleet_embedding.FLEET_DIM).fit(windows, labels)
    reloaded = fleet_embedding.load(fleet_embedding.dump(net))
    vectors = fleet_embedding.embed(reloaded, windows)
    assert vectors.shape == (len(windows), 64)
    np.testing.assert_allclose(vectors, net.embed(windows), atol=1e-3)
    session = ort.InferenceSession(fleet_embedding.to_onnx(reloaded),
                                   providers=["CPUExecutionProvider"])
    onnx_vectors = session.run(["embedding"], {"audio": windows})[0]
    np.testing.assert_allclose(onnx_vectors, vectors, rtol=1e-4, atol=1e-5)
