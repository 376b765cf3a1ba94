"""The benchmark load generator's request bodies and result merging."""

from __future__ import annotations

import numpy as np
import pytest

from bench.loadgen import Bodies, Result
from ingest import codec

LIMITS = codec.BatchLimits(max_windows=100, max_past_s=366 * 86400.0, max_future_s=300.0)
NOW_US = 1_790_000_000_000_000


@pytest.mark.parametrize("fmt", ["json", "ndjson", "binary"])
def test_bodies_parse_back_to_the_windows_sent(fmt: str) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(7, 128)).astype(np.float32)
    times = NOW_US - 3_600_000_000 + np.arange(5, dtype=np.int64) * 1_000_000
    rows = np.array([3, 0, 6, 6, 1])
    body = Bodies(fmt, vectors).build(times, rows)
    batch = codec.parse_batch(body, {"json": codec.JSON_TYPE, "ndjson": codec.NDJSON_TYPE,
                                     "binary": codec.BINARY_TYPE}[fmt],
                              dim=128, limits=LIMITS, now_us=NOW_US)
    assert batch.times_us.tolist() == times.tolist()
    # float32 written as text and read back as float32 is exact
    assert np.array_equal(batch.values, vectors[rows])


def test_merged_results_span_from_first_start_to_last_end() -> None:
    a = Result(requests=10, windows=100, cpu_s=1.0, latencies_s=[0.1], t0=100.0, t1=110.0)
    b = Result(requests=5, windows=50, errors=1, error_samples=["x"], cpu_s=0.5,
               latencies_s=[0.3], t0=102.0, t1=115.0)
    merged = Result().merge(a).merge(b)
    assert (merged.requests, merged.windows, merged.errors) == (15, 150, 1)
    assert merged.seconds == pytest.approx(15.0)
    assert merged.windows_per_s == pytest.approx(10.0)
    assert merged.cpu_s == pytest.approx(1.5)
    assert merged.latency_ms(50) == pytest.approx(200.0)
