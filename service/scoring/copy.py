"""Binary COPY payload for score rows, built with numpy in one pass (no per-row Python),
in the layout of PostgreSQL's "COPY … Binary Format": header, then per row an int16 field
count and (int32 length, big-endian value) per field, then an int16 -1 trailer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import numpy as np

_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_TRAILER = (-1).to_bytes(2, "big", signed=True)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)

# (machine_id uuid, sensor_id uuid, t timestamptz, model_version int4, score float4,
#  threshold float4, anomalous bool), the column order of the score_stage table.
_ROW = np.dtype([
    ("nfields", ">i2"),
    ("machine_len", ">i4"), ("machine", "V16"),
    ("sensor_len", ">i4"), ("sensor", "V16"),
    ("t_len", ">i4"), ("t", ">i8"),
    ("version_len", ">i4"), ("version", ">i4"),
    ("score_len", ">i4"), ("score", ">f4"),
    ("threshold_len", ">i4"), ("threshold", ">f4"),
    ("anomalous_len", ">i4"), ("anomalous", "u1"),
])


def pg_microseconds(times: list[datetime]) -> np.ndarray:
    """timestamptz wire values: microseconds since 2000-01-01 UTC, computed exactly."""
    return np.fromiter(((t - _PG_EPOCH) // _ONE_US for t in times), dtype=np.int64,
                       count=len(times))


def score_rows(machine_id: UUID, sensor_ids: list[UUID], times: list[datetime],
               model_version: int, scores: np.ndarray, threshold: float,
               anomalous: np.ndarray) -> bytes:
    """The rows of one machine and model version, without header and trailer."""
    n = len(times)
    rows = np.empty(n, dtype=_ROW)
    rows["nfields"] = 7
    rows["machine_len"] = 16
    rows["machine"] = np.frombuffer(machine_id.bytes, dtype="V16")[0]
    rows["sensor_len"] = 16
    rows["sensor"] = np.frombuffer(b"".join(s.bytes for s in sensor_ids), dtype="V16")
    rows["t_len"] = 8
    rows["t"] = pg_microseconds(times)
    rows["version_len"] = 4
    rows["version"] = model_version
    rows["score_len"] = 4
    rows["score"] = scores
    rows["threshold_len"] = 4
    rows["threshold"] = threshold
    rows["anomalous_len"] = 1
    rows["anomalous"] = anomalous
    return rows.tobytes()


def payload(row_blocks: list[bytes]) -> bytes:
    """A complete COPY stream from blocks made by :func:`score_rows`."""
    return _HEADER + b"".join(row_blocks) + _TRAILER
