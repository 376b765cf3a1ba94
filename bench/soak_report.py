"""The soak benchmark's section: resident memory first vs last minute per process, alert
latency first vs last minute, database size and rows against what retention keeps, and
every sample."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.common import Section, Table, check, fmt
from bench.soak_mqtt import BATCH as MQTT_BATCH
from bench.soak_probe import CLEAR_FIRST
from service.alerting.rules import DEFAULT_RULE

FLAT = 0.10
MiB = 2**20


def _window(samples: list[dict[str, Any]], lo: float, hi: float) -> list[dict[str, Any]]:
    return [s for s in samples if lo <= s["t_s"] < hi]


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _change(first: float | None, last: float | None) -> float | None:
    return (last - first) / first if first and last is not None else None


def minutes(raw: dict[str, Any]) -> dict[str, tuple[float, float]]:
    end = raw["minutes"] * 60
    return {"first minute": (0.0, 60.0), "second minute": (60.0, 120.0),
            "last minute": (end - 60 + 1e-6, end + 1.0)}


def rss(raw: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per process: mean RSS (MiB) of each minute's samples, before the load and peak."""
    samples, out = raw["samples"], {}
    for name in samples[0]["rss_mib"]:
        row: dict[str, float | None] = {"before": samples[0]["rss_mib"][name]}
        for label, (lo, hi) in minutes(raw).items():
            row[label] = _mean([s["rss_mib"][name] for s in _window(samples, lo, hi)])
        row["peak"] = max((s["rss_mib"][name] or 0.0) for s in samples)
        out[name] = row
    return out


def cores(raw: dict[str, Any]) -> dict[str, float]:
    """Cores each process kept busy from the load's start to the last sample."""
    first = next(s for s in raw["samples"] if s["t_s"] >= 0)
    last = raw["samples"][-1]
    elapsed = max(last["t_s"] - first["t_s"], 1e-9)
    return {name: (last["cpu_s"][name] - first["cpu_s"][name]) / elapsed
            for name in last["cpu_s"]}


def _pct_text(change: float | None) -> str:
    return f"{change:+.1%}" if change is not None else "-"


def rss_table(raw: dict[str, Any]) -> Table:
    rows, busy = [], cores(raw)
    for name, r in rss(raw).items():
        change = _change(r["first minute"], r["last minute"])
        warm = _change(r["second minute"], r["last minute"])
        rows.append([name, fmt(r["before"]), fmt(r["first minute"]), fmt(r["second minute"]),
                     fmt(r["last minute"]), _pct_text(change), _pct_text(warm), fmt(r["peak"]),
                     check(change is not None and abs(change) <= FLAT),
                     check(warm is not None and abs(warm) <= FLAT), fmt(busy[name])])
    return Table("Resident memory (VmRSS, MiB) of every Earshot process, mean of the samples "
                 "in each minute; cores it kept busy over the run",
                 ["process", "before the load", "first minute", "second minute",
                  "last minute", "last vs first", "last vs second", "peak",
                  f"first to last flat within {FLAT:.0%}",
                  f"second to last flat within {FLAT:.0%}", "cores busy"], rows)


def latency(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    end = raw["minutes"] * 60
    # A minute holds 12 alerts, so its p95 is nearly its maximum: five-minute blocks (60
    # alerts each) say whether latency moved.
    blocks = {"first five minutes": (0.0, 300.0), "last five minutes": (end - 300, end + 1)}
    spans = {**minutes(raw), **(blocks if end >= 600 else {}),
             "whole run": (-1.0, end + 1)}
    for label, (lo, hi) in spans.items():
        lat = [s for offset, s in raw["latencies"] if lo <= offset < hi]
        sent = sum(lo <= offset < hi for offset in raw["pulse_offsets"])
        out[label] = {"n": len(lat), "sent": sent, "p50": _pct(lat, 50), "p95": _pct(lat, 95),
                      "max": max(lat) if lat else None}
    return out


def latency_table(raw: dict[str, Any]) -> Table:
    rows = [[label, f"{v['n']} / {v['sent']}", fmt(v["p50"]), fmt(v["p95"]), fmt(v["max"])]
            for label, v in latency(raw).items()]
    return Table("Alert latency (s): the response to the window completing "
                 f"{DEFAULT_RULE.k}-of-{DEFAULT_RULE.n} to the signed `alert.firing` webhook's "
                 "arrival", ["alerts injected", "measured / sent", "p50 s", "p95 s", "max s"],
                 rows)


def full_at(raw: dict[str, Any]) -> float:
    """When the retention window has filled and retention has run on it: from then on the
    database should stop growing with the raw data."""
    return raw["retain_s"] + 2 * raw["chunk_s"] + raw["retention_every_s"]


def db_points(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    samples = raw["samples"]
    full = next((s for s in samples if s["t_s"] >= full_at(raw)), samples[-1])
    first = next((s for s in samples if s["t_s"] >= 60), samples[-1])
    return {"before the load": samples[0], f"{first['t_s']:.0f} s": first,
            f"{full['t_s']:.0f} s (retention window full)": full,
            f"{samples[-1]['t_s']:.0f} s (end)": samples[-1]}


def sawtooth_peaks(raw: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The largest sample in the minute after the retention window filled, and in the
    last minute: retention drops whole chunks, so the size saws up and down."""
    samples, lo = raw["samples"], full_at(raw)
    end_s = samples[-1]["t_s"]
    first = _window(samples, lo, lo + 60) or samples[-1:]
    last = _window(samples, end_s - 60 + 1e-6, end_s + 1) or samples[-1:]
    return (max(first, key=lambda s: s["db_bytes"]), max(last, key=lambda s: s["db_bytes"]))


def db_table(raw: dict[str, Any]) -> Table:
    points = db_points(raw)
    rows = [["database size (MiB)", *[fmt(p["db_bytes"] / MiB) for p in points.values()]],
            ["oldest retained window (s ago)", *[fmt(p["retained_s"]) for p in points.values()]]]
    for table in raw["samples"][0]["rows"]:
        rows.append([f"`{table}` rows", *[f"{p['rows'][table]:,}" for p in points.values()]])
    return Table("Database: size and the rows of every table that grows with traffic",
                 ["", *points], rows)


def samples_table(raw: dict[str, Any]) -> Table:
    names = list(raw["samples"][0]["rss_mib"])
    rows = [[f"{s['t_s']:.0f}", f"{s['load']:.1f}", fmt(s["db_bytes"] / MiB),
             f"{s['rows']['embeddings']:,}", f"{s['rows']['scores']:,}",
             f"{s['rows']['ingest_batches']:,}", f"{s['rows']['webhook_messages']:,}",
             f"{s['rows']['score_rollups']:,}", *[fmt(s["rss_mib"][n]) for n in names]]
            for s in raw["samples"]]
    return Table(f"Every sample ({raw['sample_s']:g} s apart; RSS in MiB)",
                 ["t (s)", "load avg", "DB MiB", "embeddings", "scores", "queued batches",
                  "webhook messages", "rollups", *names], rows)


TEXT = """
**Method.** A fresh database on the embedded cluster; {workers} `earshot worker` processes,
{apis} API processes (`uvicorn service.app:app_from_env`, as `earshot api` runs it) and
{bridges} `earshot bridge` processes sharing the stream (`$share/earshot/...`, one stable
client id each) on a Mosquitto of their own, all on 127.0.0.1, the database on the same
2-core box (shared with other tenants: load average {load_lo:.1f} to {load_hi:.1f} during
the run). **{sensors:,} sensors** (one per machine) stream one real logmel-v1 window a
second each. {http:,} post their last 60 windows every 60 s over HTTP (binary: a minute
per request, as the capacity plan assumes), each API process's share paced by one
generator process ({http:,} windows/s in {rps:,.1f} requests/s; achieved {wps:,.0f}
windows/s, {errors} errors, request p95 {p95_ms} ms, the pacing {late:.1f} s behind at the
end). {mqtt_n:,} publish theirs over MQTT (one JSON message of 60 windows a minute each,
QoS 1, paced evenly by one publisher): {mqtt_pub:,} messages published, {mqtt_acked:,}
acknowledged by the broker, {mqtt_errors}; {mqtt_caught:,} of {mqtt_n:,} sensors had their
last message stored {mqtt_drain:.1f} s after publishing ended.
Every machine's active detector is one **{algo}** model fitted on the BLDC healthy
recordings (as in the alert-latency section). **Alerts**: every {pulse:g} s the next of
a fixed pool of {pool} machines (round robin: each alerts once every {round_s:g} s, as the
same machines of a real fleet do) gets {clear} healthy windows, enough to resolve the
alert its previous pulse fired, then propeller-fault windows, through one of the APIs in
turn; the latency runs from the response to the window completing the default rule to the
arrival of the `alert.firing` webhook that follows at a receiver on 127.0.0.1 that
verifies every signature ({bad} failed). **Retention that bites during the run**: raw
windows, scores, predictions, webhook messages, jobs, dead letters, resolved alerts and
score rollups (kept forever by default) kept {retain:g} s, hypertable chunks
of {chunk:g} s (set on the soak database), the leader enforcing every retention each
{every:g} s (`EARSHOT_RETENTION_INTERVAL_S`; the default is hourly). Sampled every
{sample:g} s: VmRSS of every process from /proc, `pg_database_size`, `count(*)` of every
table that grows. A benchmark, not part of `make test`.

{verdicts}
"""


def ingested(raw: dict[str, Any]) -> int:
    """Windows sent over HTTP and acknowledged over MQTT."""
    mqtt = raw.get("mqtt", {})
    return int(raw["bg"]["windows"]) + MQTT_BATCH * int(mqtt.get("acked", 0))


def late_memory(raw: dict[str, Any]) -> str:
    """The change from the sixth minute (the retention window full, caches warm) to the
    last: whether memory still moves once the run is in its steady state."""
    end = raw["minutes"] * 60
    if end < 600:
        return ""
    samples = raw["samples"]
    sixth, last = _window(samples, 300, 360), _window(samples, end - 59, end + 1)
    changes = {name: _change(_mean([s["rss_mib"][name] for s in sixth]),
                             _mean([s["rss_mib"][name] for s in last]))
               for name in samples[0]["rss_mib"]}
    return (" From the sixth minute to the last: " + ", ".join(
        f"{n} {c:+.1%}" for n, c in changes.items() if c is not None) + ".")


def verdicts(raw: dict[str, Any]) -> str:
    memory = rss(raw)
    moved = {n: _change(r["first minute"], r["last minute"]) for n, r in memory.items()}
    warm = {n: _change(r["second minute"], r["last minute"]) for n, r in memory.items()}
    flat = [n for n, c in moved.items() if c is not None and abs(c) <= FLAT]
    flat_warm = [n for n, c in warm.items() if c is not None and abs(c) <= FLAT]
    lat = latency(raw)
    first, last = lat["first minute"], lat["last minute"]
    full, end = sawtooth_peaks(raw)
    growth = _change(full["db_bytes"], end["db_bytes"])
    return "\n".join([
        f"* **Memory**: {len(flat)} of {len(moved)} processes flat within {FLAT:.0%} from the "
        "first to the last minute (" + ", ".join(
            f"{n} {c:+.1%}" for n, c in moved.items() if c is not None) + "); "
        f"{len(flat_warm)} of {len(warm)} from the second minute to the last (" + ", ".join(
            f"{n} {c:+.1%}" for n, c in warm.items() if c is not None) + "). The first "
        "minute includes the warm-up: each worker loads every machine's detector at its "
        "first window and each API process its caches." + late_memory(raw),
        f"* **Alert latency**: p95 {fmt(first['p95'])} s in the first minute, "
        f"{fmt(last['p95'])} s in the last ({first['n']} and {last['n']} alerts)"
        + (f"; over five-minute blocks p95 {fmt(lat['first five minutes']['p95'])} s first, "
           f"{fmt(lat['last five minutes']['p95'])} s last, p50 "
           f"{fmt(lat['first five minutes']['p50'])} and "
           f"{fmt(lat['last five minutes']['p50'])} s"
           if "first five minutes" in lat else "")
        + f"; {lat['whole run']['n']} of {lat['whole run']['sent']} alerts arrived in all"
        + (f"; pulse errors: {raw['pulse_errors'][:3]}." if raw["pulse_errors"] else "."),
        f"* **Database size** (retention drops a chunk at a time, so the size is a sawtooth; "
        f"its peaks compared): {fmt(full['db_bytes'] / MiB)} MiB in the minute after the "
        f"retention window filled ({full['t_s']:.0f} s), {fmt(end['db_bytes'] / MiB)} MiB in "
        f"the last ({growth:+.1%}) while {ingested(raw):,} windows were ingested; the "
        f"retained embeddings reach back {fmt(end['retained_s'])} s and number "
        f"{end['rows']['embeddings']:,} (≈ {raw['sensors']:,} x the retained seconds)."
        if growth is not None else "* **Database size**: not enough samples."])


def render(raw: dict[str, Any]) -> Section:
    loads = [s["load"] for s in raw["samples"]]
    bg, mqtt = raw["bg"], raw.get("mqtt", {})
    text = TEXT.format(
        workers=raw["workers"], apis=raw["apis"], load_lo=min(loads), load_hi=max(loads),
        bridges=raw.get("bridges", 0), http=bg.get("sensors", raw["sensors"]),
        mqtt_n=mqtt.get("sensors", 0), mqtt_pub=mqtt.get("published", 0),
        mqtt_acked=mqtt.get("acked", 0), mqtt_caught=mqtt.get("sensors_caught_up", 0),
        mqtt_drain=mqtt.get("drain_s", 0.0),
        mqtt_errors=f"errors: {mqtt['errors'][:2]}" if mqtt.get("errors") else "no errors",
        sensors=raw["sensors"], rps=bg.get("sensors", raw["sensors"]) / 60,
        wps=bg["windows_per_s"],
        errors=bg["errors"], p95_ms=fmt(bg["p95_ms"]), late=bg["late_s"],
        algo=raw["algorithm"], pulse=raw["pulse_every_s"], bad=raw["bad_signatures"],
        pool=raw.get("alert_pool", "?"),
        round_s=raw.get("alert_pool", 0) * raw["pulse_every_s"], clear=CLEAR_FIRST,
        retain=raw["retain_s"], chunk=raw["chunk_s"], every=raw["retention_every_s"],
        sample=raw["sample_s"], verdicts=verdicts(raw))
    title = f"Soak: {raw['sensors']:,} sensors at 1 Hz for {raw['minutes']:g} minutes"
    return Section("soak", title, text, [rss_table(raw), latency_table(raw), db_table(raw),
                                         samples_table(raw)], raw)
