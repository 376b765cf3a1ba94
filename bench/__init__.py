"""Benchmarks run by `make bench` (`python -m bench.run`), not part of `make test`.

Each module listed here has ``run(ctx: bench.common.Context) -> bench.common.Section``;
:mod:`bench.run` runs them in this order and rewrites BENCHMARKS.md from the results.
"""

BENCHMARKS = [
    "bench.training",
    "bench.embedding",
    "bench.quality",
    "bench.robustness",
    "bench.ingest",
    "bench.alert_latency",
    "bench.timeline",
    "bench.quality_api",
    "bench.audio",
    "bench.dashboard",
    "bench.scaling",
    "bench.esc10_cnn",
    "bench.fleet_embedding",
    "bench.robust_features",
    "bench.esc10_ablation",
    "bench.esc10_api",
    "bench.soak",
]
