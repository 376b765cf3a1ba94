"""Artifacts: exact round trip, checksum before unpickling, header without unpickling."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from detectors import ALGORITHMS, ArtifactError, BaseDetector, build
from detectors.artifact import FORMAT_VERSION, MAGIC, dump, load, read_header
from tests.detectors.conftest import FAST_PARAMS, gaussian

META = {"embedding_kind": "logmel-v1", "dim": 16, "train_from": "2026-11-01T00:00:00Z"}
UNPICKLED: list[str] = []


def _record_unpickling() -> str:
    UNPICKLED.append("payload was unpickled")
    return "not a detector"


class _Trap:
    """Pickles to a payload that records it was unpickled (stands in for hostile bytes)."""

    def __reduce__(self) -> tuple[object, tuple[()]]:
        return _record_unpickling, ()


def _blob(header: dict, payload: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return MAGIC + struct.pack(">Q", len(encoded)) + encoded + payload


@pytest.fixture(autouse=True)
def _reset_trap() -> None:
    UNPICKLED.clear()


@pytest.fixture(scope="module")
def fitted() -> BaseDetector:
    return build("knn", FAST_PARAMS["knn"], {"method": "gamma", "q": 0.97}).fit(
        gaussian(400, seed=20)
    )


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_round_trip_preserves_scores_exactly(name: str) -> None:
    detector = build(name, FAST_PARAMS[name]).fit(gaussian(200, seed=21))
    probe = gaussian(50, seed=22, shift=0.5)
    blob, sha = dump(detector, META)
    assert sha == hashlib.sha256(blob).hexdigest()
    restored, header = load(blob, sha)
    assert type(restored) is type(detector)
    assert np.array_equal(restored.decision_function(probe), detector.decision_function(probe))
    assert restored.threshold_ == detector.threshold_
    assert header["algorithm"] == name
    assert header["meta"] == META


def test_header_describes_the_model(fitted: BaseDetector) -> None:
    blob, _ = dump(fitted, META)
    header = read_header(blob)
    assert header["format_version"] == FORMAT_VERSION
    assert set(header["libraries"]) == {"python", "numpy", "sklearn", "pyod", "torch",
                                         "skorch"}
    assert header["params"] == {
        "n_neighbors": 5,
        "method": "mean",
        "max_train": 2000,
        "random_state": 0,
    }
    assert header["threshold"] == {
        "method": "gamma",
        "method_used": fitted.threshold_method_,
        "q": 0.97,
        "value": fitted.threshold_,
    }
    assert header["n_features"] == 16
    assert header["holdout_score_stats"] == fitted.holdout_score_stats_
    assert header["meta"] == META


def test_wrong_checksum_is_refused_before_unpickling(fitted: BaseDetector) -> None:
    blob, sha = dump(fitted, META)
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load(blob, "0" * 64)
    trap = _blob(read_header(blob), pickle.dumps(_Trap()))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load(trap, sha)
    assert UNPICKLED == []


def test_tampered_blob_fails_its_recorded_checksum(fitted: BaseDetector) -> None:
    blob, sha = dump(fitted, META)
    tampered = bytearray(blob)
    tampered[-10] ^= 0xFF
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load(bytes(tampered), sha)
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        load(blob[:-1], sha)


def test_payload_of_the_wrong_type_is_refused_after_the_checksum(fitted: BaseDetector) -> None:
    trap = _blob(read_header(dump(fitted, META)[0]), pickle.dumps(_Trap()))
    with pytest.raises(ArtifactError, match="is not the 'knn' detector"):
        load(trap, hashlib.sha256(trap).hexdigest())
    # With a matching checksum the payload *is* unpickled: the checksum is what gates it.
    assert UNPICKLED == ["payload was unpickled"]


def test_unknown_format_version_is_refused_before_unpickling(fitted: BaseDetector) -> None:
    header = {**read_header(dump(fitted, META)[0]), "format_version": FORMAT_VERSION + 1}
    future = _blob(header, pickle.dumps(_Trap()))
    with pytest.raises(ArtifactError, match="format version"):
        load(future, hashlib.sha256(future).hexdigest())
    assert UNPICKLED == []


def test_header_is_read_without_unpickling() -> None:
    header = {"format_version": FORMAT_VERSION, "algorithm": "iforest", "meta": META}
    trap = _blob(header, pickle.dumps(_Trap()))
    assert read_header(trap) == header
    assert UNPICKLED == []


@pytest.mark.parametrize(
    "blob",
    [
        b"",
        b"not an artifact",
        MAGIC,
        MAGIC + struct.pack(">Q", 100) + b"{}",
        MAGIC + struct.pack(">Q", 3) + b"\xff\xfe{",
        MAGIC + struct.pack(">Q", 2) + b"[]",
    ],
)
def test_corrupt_blobs_raise_artifact_error(blob: bytes) -> None:
    with pytest.raises(ArtifactError):
        read_header(blob)
    with pytest.raises(ArtifactError):
        load(blob, hashlib.sha256(blob).hexdigest())


def test_corrupt_payload_with_valid_checksum_raises_artifact_error(fitted: BaseDetector) -> None:
    blob, _ = dump(fitted, META)
    broken = blob[:-100]
    with pytest.raises(ArtifactError, match="could not be unpickled"):
        load(broken, hashlib.sha256(broken).hexdigest())


def test_dump_rejects_unfitted_detectors_and_unserialisable_meta(fitted: BaseDetector) -> None:
    with pytest.raises(NotFittedError):
        dump(build("iforest", {}), META)
    with pytest.raises(TypeError, match="JSON-serialisable"):
        dump(fitted, {"trained_at": object()})
