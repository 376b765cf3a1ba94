"""What a pickled `cnn` keeps (detectors.cnn.CNNClassifier.__getstate__): the network's
weights, not skorch's optimizer state, callbacks and history; a fleet embedding version
(the transfer options' starting point, pickled with every member) its network, not its
fixed front end. Predictions after the artifact round trip are bit-identical, the
artifact is a fraction of the whole fitted object, a pickle of the earlier layout still
loads, and loading leaves torch's global random stream where it was."""

from __future__ import annotations

import pickle
from functools import cache

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator

from detectors import classifier_artifact, classifiers, fleet_embedding
from detectors.cnn import CNNClassifier
from detectors.embedding_net import EmbeddingNet
from detectors.fleet_embedding import FleetPretrained
from detectors.fold_ensemble import FoldEnsemble

TINY = {"max_epochs": 3, "patience": 2, "width": 8}


@cache
def tones() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1 s clips of two noisy tones, 4 recordings of 3 clips per class."""
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    xs, ys, gs = [], [], []
    for c, hz in enumerate((440.0, 1800.0)):
        for k in range(12):
            xs.append(0.3 * np.sin(2 * np.pi * hz * t + rng.uniform(0, 6))
                      + 0.05 * rng.standard_normal(t.size))
            ys.append(f"tone{c}")
            gs.append(10 * c + k // 3)
    return np.asarray(xs, np.float32), np.array(ys), np.array(gs)


def _whole_object_bytes(model: CNNClassifier) -> int:
    """The pickle of a fitted cnn as it was stored before: every attribute, net_ whole."""
    return len(pickle.dumps(dict(model.__dict__), protocol=pickle.HIGHEST_PROTOCOL))


def test_fold_ensemble_artifact_keeps_weights_only_and_predicts_the_same() -> None:
    x, y, g = tones()
    fitted = classifiers.fit("cnn", TINY, x, y, g)  # fold_ensemble: the default
    ensemble = fitted.pipeline[-1]
    assert isinstance(ensemble, FoldEnsemble) and ensemble.n_members_ >= 3
    blob, digest = classifier_artifact.dump(fitted.pipeline, "cnn", {"input": "audio"})
    loaded, _ = classifier_artifact.load(blob, digest)
    assert np.array_equal(loaded.predict_proba(x), fitted.pipeline.predict_proba(x))
    nets = [m[-1] for m in ensemble.members_]  # members are fitted pipelines
    before = sum(_whole_object_bytes(n) for n in nets)
    weights = sum(v.numel() * v.element_size() for n in nets
                  for v in n.net_.module_.state_dict().values())
    assert len(blob) < before / 3 and len(blob) < 2 * weights
    member = loaded[-1].members_[-1][-1]
    assert (member.n_epochs_, member.validated_) == (nets[-1].n_epochs_, False)


def test_a_pickle_of_the_whole_net_still_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y, g = tones()
    model = CNNClassifier(**TINY).fit(x, y, g)
    with monkeypatch.context() as patch:
        patch.setattr(CNNClassifier, "__getstate__", BaseEstimator.__getstate__)
        old = pickle.dumps(model)
    assert len(old) > 3 * len(pickle.dumps(model))
    assert np.array_equal(pickle.loads(old).predict_proba(x), model.predict_proba(x))


def test_loading_leaves_the_global_torch_stream_alone() -> None:
    x, y, g = tones()
    blob = pickle.dumps(CNNClassifier(**TINY).fit(x, y, g))
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    pickle.loads(blob)
    assert torch.equal(torch.rand(3), expected)


def test_fine_tuned_cnn_and_its_embedding_round_trip() -> None:
    x, y, g = tones()
    net = EmbeddingNet(**TINY).fit(x, g.astype(str))
    tuned = CNNClassifier(**{**TINY, "max_epochs": 1}, pretrained=net).fit(x, y, g)
    again = pickle.loads(pickle.dumps(tuned))
    assert np.array_equal(again.predict_proba(x), tuned.predict_proba(x))
    assert np.array_equal(again.pretrained.embed(x), net.embed(x))
    assert net.net_.history[-1, "train_loss"] > 0  # in memory the history stays


def test_a_fleet_embedding_pickles_its_weights_not_its_front_end() -> None:
    x, y, g = tones()
    net = EmbeddingNet(**{**TINY, "width": 16}).fit(x, g.astype(str))
    pretrained = FleetPretrained(fleet_embedding.load(fleet_embedding.dump(net)), 3)
    again = pickle.loads(pickle.dumps(pretrained))
    assert (again.version, again.width, again.embedding_dim) == (3, 16, 64)
    assert np.array_equal(again.embed(x), pretrained.embed(x))
    front = pretrained.module.front.kernels
    assert len(pickle.dumps(pretrained)) < front.numel() * front.element_size() / 10
    old = pickle.dumps(pretrained.__dict__)  # the earlier layout: the whole module
    restored = FleetPretrained.__new__(FleetPretrained)
    restored.__setstate__(pickle.loads(old))
    assert np.array_equal(restored.embed(x), pretrained.embed(x))
    tuned = classifiers.fit("cnn", {**TINY, "width": 16, "transfer": "fine_tune"}, x, y, g,
                            pretrained=pretrained)
    blob, digest = classifier_artifact.dump(tuned.pipeline, "cnn", {"input": "audio"})
    loaded, _ = classifier_artifact.load(blob, digest)
    assert np.array_equal(loaded.predict_proba(x), tuned.pipeline.predict_proba(x))
    assert len(blob) < 2_000_000  # 6 networks and their 6 starting points, no front ends
