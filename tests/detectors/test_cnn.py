"""The `cnn` classifier and the embedding network on real ESC-10 audio (1 s windows of
chainsaw and rooster clips): fit/predict contract, grouped validation, fixed seeds, the
time cap, augmentation switches, artifacts, transfer, and the classifier registry."""

from __future__ import annotations

import inspect
from functools import cache

import numpy as np
import pytest
import torch

from detectors import classifier_artifact, classifiers
from detectors.audio_nets import Augment, augment_batch, mel_power, mixup, to_db
from detectors.cnn import CNNClassifier, TrainingTimeExceeded, grouped_holdout
from detectors.embedding_net import EmbeddingNet, LinearOnEmbedding
from tests.service.classification.helpers import esc10_clips, load_16k

FAST = {"max_epochs": 4, "patience": 2, "width": 8}
CLASSES = ("chainsaw", "rooster")


@cache
def windows() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1 s windows of 4 clips per class: (clips, labels, clip index)."""
    xs, ys, gs = [], [], []
    for c, label in enumerate(CLASSES):
        for k, path in enumerate(esc10_clips(label)[:4]):
            audio = load_16k(path)
            n = audio.size // 16000
            xs.append(audio[: n * 16000].reshape(n, 16000))
            ys += [label] * n
            gs += [10 * c + k] * n
    return np.concatenate(xs).astype(np.float32), np.array(ys), np.array(gs)


def test_fit_predict_contract_and_fixed_seed() -> None:
    x, y, g = windows()
    model = CNNClassifier(**FAST, validation_fraction=0.25).fit(x, y, g)
    assert list(model.classes_) == list(CLASSES) and model.validated_
    assert 1 <= model.n_epochs_ <= FAST["max_epochs"]
    proba = model.predict_proba(x)
    assert proba.shape == (len(x), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert set(model.predict(x[:3])) <= set(CLASSES)
    again = CNNClassifier(**FAST, validation_fraction=0.25).fit(x, y, g).predict_proba(x)
    assert np.allclose(proba, again, atol=1e-6)  # same seed, same network


def test_grouped_holdout_keeps_recordings_whole() -> None:
    _, y, g = windows()
    train, valid = grouped_holdout(y, g, 0.25, seed=0)  # type: ignore[misc]
    assert not set(g[train]) & set(g[valid])
    assert set(y[valid]) == set(CLASSES)
    one_group_each = np.array([0, 0, 1, 1])
    assert grouped_holdout(np.array(["a", "a", "b", "b"]), one_group_each, 0.2, 0) is None


def test_time_cap_fails_with_a_clear_error() -> None:
    x, y, g = windows()
    with pytest.raises(TrainingTimeExceeded, match=r"max_train_seconds=0\.001"):
        CNNClassifier(**{**FAST, "max_epochs": 50}, max_train_seconds=0.001).fit(x, y, g)


def test_bad_input_is_refused() -> None:
    x, y, _ = windows()
    with pytest.raises(ValueError, match="at least 1024 samples"):
        CNNClassifier(**FAST).fit(x[:, :100], y)
    with pytest.raises(ValueError, match="two classes"):
        CNNClassifier(**FAST).fit(x[:4], np.array(["a"] * 4))
    bad = x[:4].copy()
    bad[0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mel_power(bad)


def test_each_augmentation_changes_the_spectrogram() -> None:
    power = torch.as_tensor(mel_power(windows()[0][:8]))
    plain = to_db(power)
    assert torch.equal(augment_batch(power, Augment(), torch.Generator()), plain)
    for augment in (Augment(gain_db=6), Augment(shift=True), Augment(background=1.0),
                    Augment(freq_mask=8), Augment(time_mask=12)):
        out = augment_batch(power, augment, torch.Generator().manual_seed(1))
        assert out.shape == plain.shape and not torch.equal(out, plain), augment
    mixed, soft = mixup(plain, torch.tensor([0, 1] * 4), 2, 0.4,
                        torch.Generator().manual_seed(1))
    assert torch.allclose(soft.sum(dim=1), torch.ones(8)) and (soft.max(dim=1).values >= 0.5).all()
    assert not torch.equal(mixed, plain)


def test_artifact_round_trip_through_the_registry() -> None:
    x, y, g = windows()
    fitted = classifiers.fit("cnn", FAST, x, y, g)
    assert fitted.metrics["cv"]["folds"] >= 2 and 0.0 <= fitted.metrics["accuracy"] <= 1.0
    blob, digest = classifier_artifact.dump(fitted.pipeline, "cnn", {"input": "audio"})
    loaded, header = classifier_artifact.load(blob, digest)
    assert header["libraries"]["skorch"] and header["classes"] == list(CLASSES)
    assert np.allclose(loaded.predict_proba(x), fitted.pipeline.predict_proba(x), atol=1e-6)


def test_registry_lists_cnn_with_the_estimators_defaults() -> None:
    listed = {a["name"]: a for a in classifiers.list_algorithms()}
    assert listed["cnn"]["input"] == "audio" and listed["logreg"]["input"] == "embedding"
    defaults = {k: v.default for k, v in inspect.signature(CNNClassifier).parameters.items()}
    # `transfer` and `fold_ensemble` are applied by the registry, not the estimator.
    for spec in (s for s in listed["cnn"]["params"] if s["name"] not in classifiers.JOB_PARAMS):
        assert spec["default"] == defaults[spec["name"]], spec["name"]


def test_embedding_network_transfer() -> None:
    x, y, g = windows()
    net = EmbeddingNet(**FAST).fit(x, g.astype(str))  # auxiliary label: the recording
    z = net.embed(x)
    assert z.shape == (len(x), net.embedding_dim) and np.isfinite(z).all()
    linear = LinearOnEmbedding(net).fit(x, y)
    assert linear.predict_proba(x).shape == (len(x), 2)
    tuned = CNNClassifier(**{**FAST, "max_epochs": 1}, pretrained=net)
    tuned.fit(x, y, g)
    assert tuned.n_epochs_ == 1
    with pytest.raises(ValueError, match="does not match"):
        CNNClassifier(**{**FAST, "width": 12}, pretrained=net).fit(x, y, g)


def test_digital_silence_is_not_trained_on_and_predicts_no_class() -> None:
    x, y, g = windows()
    quiet = np.zeros((6, x.shape[1]), np.float32)  # ESC-10 pads short clips like this
    padded_x = np.concatenate([x, quiet])
    padded_y = np.concatenate([y, [CLASSES[0]] * 6])
    padded_g = np.concatenate([g, [99] * 6])
    model = CNNClassifier(**FAST).fit(padded_x, padded_y, padded_g)
    same = CNNClassifier(**FAST).fit(x, y, g)
    assert np.allclose(model.predict_proba(x), same.predict_proba(x), atol=1e-6)
    assert np.allclose(model.predict_proba(quiet), 0.5)


def test_masks_and_shift_move_whole_runs_per_clip() -> None:
    power = torch.as_tensor(mel_power(windows()[0][:8]))
    plain = to_db(power)
    shifted = augment_batch(power, Augment(shift=True), torch.Generator().manual_seed(3))
    for clip, rolled in zip(plain, shifted, strict=True):  # each a rotation of its clip
        assert any(torch.equal(torch.roll(clip, s, dims=1), rolled)
                   for s in range(plain.shape[2]))
    masked = augment_batch(power, Augment(freq_mask=8), torch.Generator().manual_seed(3))
    for clip, out in zip(plain, masked, strict=True):
        rows = (out != clip).any(dim=1).nonzero().flatten()
        assert rows.numel() <= 8
        if rows.numel():
            assert rows.max() - rows.min() + 1 == rows.numel()  # one contiguous band


def test_wider_mel_and_no_holdout() -> None:
    x, y, g = windows()
    assert mel_power(x[:2], 64).shape == (2, 64, 30)
    model = CNNClassifier(**{**FAST, "n_mels": 64}).fit(x, y, g)  # default: no holdout
    assert not model.validated_ and model.predict_proba(x).shape == (len(x), 2)
