"""On-device fleet embedding: a sensor downloads version N's ONNX export
(`GET /v1/fleet/embedding/<N>.onnx`), verifies its SHA-256, and computes `fleet-v<N>`
vectors with onnxruntime, streaming them instead of audio.

The model's input is what logmel-v1's steps 1-3 give (docs/features: downmix, resample to
16 kHz, 1 s windows on a 1 s grid): ``audio`` float32 ``(batch, 16000)``; its output
``embedding`` float32 ``(batch, 64)``. The log-mel front end is inside the model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import numpy as np

from ingest.features import fleet_version

SHA_HEADER = "Earshot-Sha256"


class ModelIntegrityError(ValueError):
    """The downloaded model is not the one the server (or the operator) vouched for."""


def download(base_url: str, token: str, kind: str, *, expected_sha256: str | None = None,
             cache_dir: Path | None = None, transport: httpx.BaseTransport | None = None,
             timeout_s: float = 60.0) -> bytes:
    """The ONNX bytes of `kind` (`fleet-v<N>`), checked against the server's SHA-256 and,
    when given, the operator's `expected_sha256`; a verified copy in `cache_dir` is reused."""
    version = fleet_version(kind)
    if version is None:
        raise ValueError(f"{kind!r} is not a fleet embedding kind (fleet-v<N>)")
    cached = cache_dir / f"{kind}.onnx" if cache_dir is not None else None
    if cached is not None and cached.is_file() and expected_sha256 is not None:
        blob = cached.read_bytes()
        if hashlib.sha256(blob).hexdigest() == expected_sha256.lower():
            return blob
    with httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s, transport=transport,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        response = http.get(f"/v1/fleet/embedding/{version}.onnx")
    if response.status_code != 200:
        raise ValueError(f"downloading {kind}: HTTP {response.status_code}: "
                         f"{response.text[:300]}")
    blob = response.content
    digest = hashlib.sha256(blob).hexdigest()
    for source, wanted in (("the server", response.headers.get(SHA_HEADER)),
                           ("--onnx-sha256", expected_sha256)):
        if wanted is not None and digest != wanted.lower():
            raise ModelIntegrityError(f"the {kind} model downloaded has SHA-256 {digest}, "
                                      f"not {wanted} as {source} says: not used")
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(blob)
    return blob


class OnnxEmbedder:
    """A fleet embedding model in onnxruntime (one thread, CPU)."""

    def __init__(self, blob: bytes) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
        self.dim = int(self.session.get_outputs()[0].shape[1])

    def embed(self, windows_16k: np.ndarray) -> np.ndarray:
        """``(n, 16000)`` (or one ``(16000,)``) mono 16 kHz windows -> ``(n, dim)``."""
        batch = np.atleast_2d(np.asarray(windows_16k, dtype=np.float32))
        out = self.session.run(["embedding"], {"audio": batch})[0]
        return np.asarray(out, dtype=np.float32)
