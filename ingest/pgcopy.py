"""PostgreSQL binary COPY payloads for embedding rows, built with numpy in one pass.

Every row of a batch has the same shape (uuid, timestamptz, bytea of dim float32), so the
whole COPY stream is one structured array: no per-row Python. psycopg's `write_row` costs
a Python call per row and was the ingest bottleneck (NOTES: Python-side encoding dominates).
Format: PostgreSQL docs, "COPY … Binary Format" (header, per-tuple int16 field count, then
int32 length + big-endian value per field, int16 -1 trailer).
"""

from __future__ import annotations

from uuid import UUID

import numpy as np

_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_TRAILER = (-1).to_bytes(2, "big", signed=True)
# timestamptz travels as microseconds since 2000-01-01 UTC.
_PG_EPOCH_OFFSET_US = 946_684_800_000_000


def _row_dtype(dim: int) -> np.dtype:
    return np.dtype([
        ("nfields", ">i2"),
        ("uuid_len", ">i4"), ("uuid", "V16"),
        ("t_len", ">i4"), ("t", ">i8"),
        ("v_len", ">i4"), ("v", f"V{dim * 4}"),
    ])


def copy_payload(sensor_id: UUID, times_us: np.ndarray, values: np.ndarray) -> bytes:
    """The full binary COPY stream for (sensor_id, t, v) rows; `values` is (n, dim)."""
    n, dim = values.shape
    rows = np.empty(n, dtype=_row_dtype(dim))
    rows["nfields"] = 3
    rows["uuid_len"] = 16
    rows["uuid"] = np.frombuffer(sensor_id.bytes, dtype="V16")[0]
    rows["t_len"] = 8
    rows["t"] = np.asarray(times_us, dtype=np.int64) - _PG_EPOCH_OFFSET_US
    rows["v_len"] = dim * 4
    rows["v"] = np.ascontiguousarray(values, dtype="<f4").view(f"V{dim * 4}").reshape(n)
    return _HEADER + rows.tobytes() + _TRAILER
