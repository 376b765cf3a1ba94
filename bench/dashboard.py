"""The dashboard in Chromium: navigation to the timeline drawn on a machine page with 1, 7
and 30 days of 1 Hz scores, and navigation to the fleet table rendered with 10, 100 and
1,000 machines, each next to the API's own time for the same data in the same run
(`GET /v1/machines/{id}/timeline`, `GET /v1/fleet`)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import numpy as np
import psycopg
from playwright.sync_api import Page, sync_playwright

from bench import stack
from bench.common import Context, Section, Table, check, fmt, repeat
from bench.timeline import build_rollups, load_machine
from service.ui.pages.overview import FIRST_ROWS

CHROMIUM = "/usr/bin/chromium"
SPANS_D, QUICK_SPANS_D = (1, 7, 30), (1, 7)
FLEETS, QUICK_FLEETS = (10, 100, 1000), (10, 100)
MACHINE_GOAL_MS, FLEET_GOAL_MS = 500.0, 1000.0
BROWSER_RUNS, API_RUNS = 7, 20
RECENT_S = 120  # scores per fleet machine, ending now
FIRING_EVERY = 25  # one machine in 25 has a firing anomaly alert
MODEL = """
INSERT INTO models (machine_id, target, version, algorithm, params, threshold,
    embedding_kind, dim, n_windows, fit_seconds, artifact, artifact_sha256, active,
    activated_at)
SELECT unnest(%s::uuid[]), 'detector', 1, 'mahalanobis', '{}', 1.0, 'logmel-v1', 128, 100,
       0.1, '\\x00', 'x', true, now()
"""
SCORES = """
INSERT INTO scores (machine_id, sensor_id, t, model_version, score, threshold, anomalous)
SELECT m, s, %(end)s - make_interval(secs => g), 1, r, 1.0, r > 1.0
FROM unnest(%(machines)s::uuid[], %(sensors)s::uuid[]) AS u(m, s),
     generate_series(1, %(n)s) AS g, LATERAL (SELECT 0.5 + random() * 0.6 + g * 0 AS r) x
"""
FIRING = """
INSERT INTO alerts (machine_id, type, state, starts_at, threshold, peak_score)
SELECT unnest(%s::uuid[]), 'anomaly', 'firing', now() - interval '1 minute', 1.0, 2.0
"""
LABEL = "UPDATE machines SET labels = labels || %s::jsonb WHERE id = ANY(%s::uuid[])"


def _page_times(page: Page) -> dict[str, float]:
    """Milliseconds since navigation start (the Navigation Timing entry)."""
    found: dict[str, float] = page.evaluate("""() => {
        const n = performance.getEntriesByType('navigation')[0];
        return {response: n.responseEnd, dom: n.domContentLoadedEventEnd,
                load: n.loadEventEnd};
    }""")
    return found


def time_machine_page(page: Page, url: str, machine: str, days: int) -> dict[str, float]:
    page.goto(f"{url}/machines/{machine}?span={days * 86400}")
    page.wait_for_selector("#timeline[data-drawn]", timeout=60_000)
    drawn = float(page.get_attribute("#timeline", "data-drawn") or "nan")
    return {**_page_times(page), "drawn": drawn}


def time_fleet_page(page: Page, url: str, size: int, show: str) -> dict[str, float]:
    page.goto(f"{url}/?label=s{size}&show={show}")
    rows = page.locator("table.fleet tbody tr").count()
    assert rows == (size if show == "all" else min(size, FIRST_ROWS)), (rows, size)
    return _page_times(page)


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: float(np.median([r[key] for r in runs])) for key in runs[0]}


def build_fleet(conn: psycopg.Connection, total: int) -> None:
    made = stack.bulk_sensors(conn, total, 1, "fleet")
    machines = [UUID(m) for m, _, _ in made]
    sensors = [UUID(s) for _, s, _ in made]
    end = datetime.now(UTC)
    with conn.transaction():
        conn.execute(MODEL, (machines,))
        conn.execute(SCORES, {"end": end, "machines": machines, "sensors": sensors,
                              "n": RECENT_S})
        conn.execute(FIRING, (machines[::FIRING_EVERY],))
        for size in FLEETS:
            conn.execute(LABEL, (f'{{"s{size}": "1"}}', machines[:size]))


def sign_in(page: Page, url: str, key: str) -> None:
    page.goto(url + "/sign-in")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_url(url + "/")


def collect(ctx: Context) -> dict[str, Any]:
    spans = QUICK_SPANS_D if ctx.quick else SPANS_D
    fleets = QUICK_FLEETS if ctx.quick else FLEETS
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    out: dict[str, Any] = {"machine": [], "fleet": []}
    with stack.running_stack("dashboard", scheduler=False) as st, st.connect() as conn, \
            st.client() as client, sync_playwright() as playwright:
        made = stack.bulk_sensors(conn, len(spans), 1, "history")
        started = time.perf_counter()
        for (machine, sensor, _), days in zip(made, spans, strict=True):
            load_machine(conn, UUID(machine), UUID(sensor), end, days, seed=days)
        build_rollups(st)
        build_fleet(conn, max(fleets))
        out["load_s"] = time.perf_counter() - started
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, st.url, st.admin_key)
        for (machine, _, _), days in zip(made, spans, strict=True):
            out["machine"].append(measure_machine(page, client, st.url, machine, days, end))
        for size in fleets:
            out["fleet"].append(measure_fleet(page, client, st.url, size))
        browser.close()
    return out


def measure_machine(page: Page, client: httpx.Client, url: str, machine: str, days: int,
                    end: datetime) -> dict[str, Any]:
    time_machine_page(page, url, machine, days)  # warm: templates, the JS parse cache
    browser = medians([time_machine_page(page, url, machine, days)
                       for _ in range(BROWSER_RUNS)])
    params = {"start": stack.rfc3339(datetime.now(UTC) - timedelta(days=days)),
              "end": stack.rfc3339(datetime.now(UTC))}
    api = repeat(lambda: stack.raise_for(client.get(f"/v1/machines/{machine}/timeline",
                                                    params=params)),
                 min_runs=API_RUNS, max_runs=API_RUNS, budget_s=0)
    return {"days": days, "windows": days * 86_400, "browser_ms": browser,
            "api": api.to_dict()}


def measure_fleet(page: Page, client: httpx.Client, url: str, size: int) -> dict[str, Any]:
    time_fleet_page(page, url, size, "worst")
    browser = medians([time_fleet_page(page, url, size, "worst") for _ in range(BROWSER_RUNS)])
    every = medians([time_fleet_page(page, url, size, "all") for _ in range(BROWSER_RUNS)])
    params = {"label": f"s{size}"}
    api = repeat(lambda: stack.raise_for(client.get("/v1/fleet", params=params)),
                 min_runs=API_RUNS, max_runs=API_RUNS, budget_s=0)
    return {"machines": size, "browser_ms": browser, "all_rows_ms": every, "api": api.to_dict()}


def _api_ms(row: dict[str, Any]) -> float:
    return float(row["api"]["p50_s"]) * 1000


def machine_table(rows: list[dict[str, Any]]) -> Table:
    first = rows[0]
    body = [[str(r["days"]), f"{r['windows']:,}", fmt(r["browser_ms"]["response"]),
             fmt(r["browser_ms"]["dom"]), fmt(r["browser_ms"]["drawn"]), fmt(_api_ms(r)),
             f"{r['browser_ms']['drawn'] / first['browser_ms']['drawn']:.2f}x",
             check(r["browser_ms"]["drawn"] <= MACHINE_GOAL_MS) if r["days"] == 30 else "—"]
            for r in rows]
    return Table("Machine page: navigation start to timeline drawn (Chromium, median of "
                 f"{BROWSER_RUNS}) next to the timeline API (p50 of {API_RUNS}), same run",
                 ["days of 1 Hz data", "windows", "HTML received ms", "DOM ready ms",
                  "chart drawn ms", "API timeline p50 ms", "drawn vs 1 day",
                  f"30 d ≤ {MACHINE_GOAL_MS:g} ms"], body)


def fleet_table(rows: list[dict[str, Any]]) -> Table:
    first = rows[0]
    body = [[f"{r['machines']:,}", fmt(r["browser_ms"]["response"]),
             fmt(r["browser_ms"]["dom"]), fmt(r["browser_ms"]["load"]),
             fmt(r["all_rows_ms"]["load"]), fmt(_api_ms(r)),
             f"{r['browser_ms']['load'] / first['browser_ms']['load']:.2f}x",
             check(r["browser_ms"]["load"] <= FLEET_GOAL_MS) if r["machines"] == 1000
             else "—"] for r in rows]
    return Table("Fleet page: navigation start to table rendered and scripts run (load "
                 f"event; Chromium, median of {BROWSER_RUNS}) next to GET /v1/fleet (p50 of "
                 f"{API_RUNS}), same run",
                 ["machines", "HTML received ms", "DOM ready ms", "load ms",
                  "load ms, every row (?show=all)", "API fleet p50 ms", "load vs smallest",
                  f"1,000 ≤ {FLEET_GOAL_MS:g} ms"],
                 body)


TEXT = """
**Data.** A fresh database; one machine per span with 1, 7 and 30 days of 1 Hz scores
(generated as in the timeline benchmark, rollups built by the service's own job), and
{fleet:,} machines with an active detector, {recent} s of recent scores each and a firing
anomaly alert on one in {every} (labels mark the first 10, 100 and 1,000); loaded in {load:.0f} s.

**Method.** Debian's Chromium driven by Playwright (headless, one tab, signed in once),
against the API process (uvicorn) on 127.0.0.1. Machine page: `/machines/{{id}}?span=` the
whole range; *chart drawn* is `performance.now()` when uPlot has drawn the timeline
(milliseconds since navigation start); the page carries the timeline API's own answer
(`service.scoring.timeline.answer`) for its first range, so no request sits between the
scripts and the drawing.
Fleet page: `/?label=` (a label marks each fleet size); the table is server-rendered,
so *DOM ready* is when it is in the page, *load* when every script ran. The page lists the
worst {first} machines (counts cover the whole fleet) and links to `?show=all`, timed too.
One warm-up navigation, then the median of {runs}. **Reference, same run**: the API's own answer for
the same data over HTTP from Python (`GET /v1/machines/{{id}}/timeline`, `GET /v1/fleet`),
p50 of {api_runs}. Goals: 30-day machine page ≤ {mgoal:g} ms, 1,000-machine fleet ≤
{fgoal:g} ms.
"""


def run(ctx: Context) -> Section:
    raw = collect(ctx)
    text = TEXT.format(first=FIRST_ROWS, fleet=max(r["machines"] for r in raw["fleet"]),
                       recent=RECENT_S,
                       every=FIRING_EVERY, load=raw["load_s"], runs=BROWSER_RUNS,
                       api_runs=API_RUNS, mgoal=MACHINE_GOAL_MS, fgoal=FLEET_GOAL_MS)
    return Section("dashboard", "Dashboard in the browser", text,
                   [machine_table(raw["machine"]), fleet_table(raw["fleet"])], raw)
