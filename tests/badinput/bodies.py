"""Request bodies of the bad-input corpus that are too big, binary or generated to write
out as text: each generator takes the case's parameters and the current time."""

from __future__ import annotations

import base64
import io
import json
import struct
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import soundfile as sf

from ingest import codec

SENSOR_DIM = 4
_HEADER = struct.Struct("<4sHHII")


def _binary(spec: dict[str, Any], now_us: int) -> bytes:
    dim = spec.get("dim", SENSOR_DIM)
    count = spec.get("count", 2)
    times = now_us - 60_000_000 + np.arange(count, dtype=np.int64) * 1_000_000
    if spec.get("times") == "pre1970":
        times = -1_000_000 - np.arange(count, dtype=np.int64)
    elif spec.get("times") == "int64max":
        times = np.iinfo(np.int64).max - np.arange(count, dtype=np.int64)
    values = np.ones((count, dim), dtype=np.float32)
    if count and spec.get("value") in ("nan", "inf"):
        values[count - 1, dim - 1] = np.nan if spec["value"] == "nan" else np.inf
    header = _HEADER.pack(spec.get("magic", "ESW1").encode(), spec.get("version", 1),
                          spec.get("dtype", 1), dim, spec.get("header_count", count))
    body = header + times.astype("<i8").tobytes() + values.astype("<f4").tobytes()
    return body[:len(body) - spec.get("cut", 0)] + b"\0" * spec.get("extra", 0)


def _wav(spec: dict[str, Any], _now_us: int) -> bytes:
    rate, channels = spec["rate"], spec["channels"]
    frames = spec.get("frames", round(spec.get("seconds", 0) * rate))
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal((frames, channels)) * 0.1).astype(np.float32)
    if "nan_at" in spec:
        samples[spec["nan_at"], 0] = np.nan
    out = io.BytesIO()
    sf.write(out, samples, rate, format="WAV", subtype=spec.get("subtype", "PCM_16"))
    data = out.getvalue()
    return data[:len(data) - spec.get("cut", 0)]


def _deep_json(spec: dict[str, Any], _now_us: int) -> bytes:
    depth = spec["depth"]
    return b'{"windows": ' + b"[" * depth + b"]" * depth + b"}"


def _ndjson_windows(spec: dict[str, Any], now_us: int) -> bytes:
    start = now_us - 600_000_000
    return b"".join(json.dumps({"t": codec.to_rfc3339(start + i * 1_000_000),
                                "v": [0.5] * SENSOR_DIM}).encode() + b"\n"
                    for i in range(spec["count"]))


def _json_with_long_name(spec: dict[str, Any], _now_us: int) -> bytes:
    # Astral-plane, combining and right-to-left characters: 4-byte UTF-8 and UTF-16 pairs.
    alphabet = "\U0001f916\u0301\u05d0\u00e9\u4e2d"
    name = (alphabet * (spec["chars"] // len(alphabet) + 1))[:spec["chars"]]
    doc = {"kind": "pump", **spec.get("extra", {}), spec["field"]: name}
    return json.dumps(doc, ensure_ascii=False).encode()


def _chunked_zeros(spec: dict[str, Any], _now_us: int) -> Iterator[bytes]:
    """No Content-Length: the server must count bytes as they arrive."""
    size, chunk = spec["size"], 8192
    for start in range(0, size, chunk):
        yield b"0" * min(chunk, size - start)


GENERATORS: dict[str, Callable[[dict[str, Any], int], bytes | Iterator[bytes]]] = {
    "binary": _binary,
    "wav": _wav,
    "deep_json": _deep_json,
    "ndjson_windows": _ndjson_windows,
    "json_with_long_name": _json_with_long_name,
    "chunked_zeros": _chunked_zeros,
    "zeros": lambda spec, _: b"\0" * spec["size"],
    "random_bytes": lambda spec, _: np.random.default_rng(1).bytes(spec["size"]),
}


def render(body: dict[str, Any] | None, substitute: Callable[[str], str],
           now_us: int) -> tuple[bytes | Iterator[bytes] | None, str | None]:
    """(content, default content type) of a corpus body description."""
    if body is None:
        return None, None
    if "json" in body:
        return substitute(json.dumps(body["json"])).encode(), "application/json"
    if "text" in body:
        return substitute(body["text"]).encode(), None
    if "base64" in body:
        return base64.b64decode(body["base64"]), None
    spec = body["gen"] if isinstance(body["gen"], dict) else {**body, "name": body["gen"]}
    return GENERATORS[spec["name"]](spec, now_us), None
