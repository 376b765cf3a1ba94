"""Issue 17's levers measured side by side in the ingest benchmark's run: the same binary
60-window requests over the same sensors, changing one thing at a time — the load
generator's HTTP client (httpx vs the lean one the main table uses) and the number of API
processes (one, as `earshot api` runs, vs two behind a client-side split, as several
`earshot api` replicas behind a load balancer would share the requests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from bench import loadgen, stack
from bench.common import Table, fmt

LEVERS = ("httpx generators, 1 API process", "lean generators, 1 API process",
          "lean generators, 2 API processes")


def measure(st: stack.Stack, cell: Callable[..., Any]) -> list[dict[str, Any]]:
    """One cell per lever, in LEVERS order; `cell(**kwargs)` is the ingest benchmark's
    `measure_api` for the binary 60-window case, each call into a fresh time range."""
    cells = [cell(runner=loadgen.run_job), cell()]
    second, url = stack.start_api(st.settings, st.log_dir)
    try:
        # Its first requests pay imports, pool connections and prepared statements that
        # the first API paid in earlier cells: a discarded warm-up cell.
        warm_up = cell(apis=[(second, url)])
        cells.append(cell(apis=[(st.api, st.url), (second, url)]))
    finally:
        second.stop()
    out = [{"lever": name, **asdict(c)} for name, c in zip(LEVERS, cells, strict=True)]
    out[-1]["warm_up_windows"] = warm_up.windows  # stored too: the durability check counts it
    return out


def table(levers: list[dict[str, Any]], ref: float, batch: int, sensors: int) -> Table:
    rows = [[c["lever"], fmt(c["windows_per_s"]), f"{c['windows_per_s'] / ref:.3f}x",
             f"{fmt(c['p50_ms'])} / {fmt(c['p95_ms'])}",
             f"{fmt(c['api_cpu_us'])} / {fmt(c['db_cpu_us'])} / {fmt(c['gen_cpu_us'])}",
             fmt((c["api_cpu_us"] + c["db_cpu_us"] + c["gen_cpu_us"]) * batch / 1000)]
            for c in levers]
    return Table(f"Levers, one at a time (binary, {batch} windows per request, "
                 f"{sensors} sensors; reference COPY write_row {fmt(ref)} "
                 "rows/s, same run)",
                 ["setup", "windows/s", "ratio to write_row", "request p50 / p95 ms",
                  "CPU µs per window: API / DB / generators", "CPU ms per request, all"],
                 rows)
