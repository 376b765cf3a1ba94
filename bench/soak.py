"""Soak: 1,000 sensors at 1 Hz for 15 minutes (EARSHOT_SOAK_MINUTES) across the scaled
topology (2 `earshot worker`s, 2 API processes, 2 MQTT bridges on a Mosquitto of its own;
half of the sensors send over HTTP, half over MQTT) with retention short enough to bite,
sampled every 30 s: resident memory of every process, alert latency of anomalous windows
injected round robin on a fixed pool of machines, database size and the rows of every
table that grows.

`python -m bench.run --only soak` (BENCHMARKS.md), or `python -m bench.soak --minutes N`
(prints the section). A benchmark, not part of `make test` (CI time budget)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import ExitStack, suppress
from typing import Any

import httpx
import psycopg

from bench import alert_models, soak_mqtt, stack
from bench import scaling_setup as setup
from bench import soak_probe as probe
from bench.common import OUT_DIR, Context, Section
from bench.soak_report import render

MINUTES, QUICK_MINUTES = 15.0, 2.0
SENSORS, QUICK_SENSORS = 1000, 200
SAMPLE_S = 30.0
PULSE_EVERY_S = 5.0  # one alert every 5 s: 12 alerts a minute
ALERT_POOL = 12  # machines the alerts go round: each fires (and resolves) once a minute
WORKERS, APIS, BRIDGES = 2, 2, 2
MQTT_SHARE = 0.5  # of the sensors publish over MQTT, the rest post over HTTP
# Retention that bites within minutes: raw windows and scores kept RETAIN_S, chunks of
# CHUNK_S (so whole chunks can go), enforced every RETENTION_EVERY_S.
RETAIN_S, CHUNK_S, RETENTION_EVERY_S = 180.0, 60.0, 30.0
DRAIN_S = 60.0
HYPERTABLES = ("embeddings", "scores", "predictions")


def minutes(ctx: Context) -> float:
    found = os.environ.get("EARSHOT_SOAK_MINUTES")
    return float(found) if found else (QUICK_MINUTES if ctx.quick else MINUTES)


def worker_env() -> dict[str, str]:
    days = str(RETAIN_S / 86400)
    return {"EARSHOT_EMBEDDINGS_RETENTION_DAYS": days, "EARSHOT_SCORES_RETENTION_DAYS": days,
            "EARSHOT_WEBHOOK_RETENTION_DAYS": days, "EARSHOT_JOBS_RETENTION_DAYS": days,
            "EARSHOT_INGEST_ERRORS_RETENTION_DAYS": days, "EARSHOT_ALERTS_RETENTION_DAYS": days,
            "EARSHOT_ROLLUPS_RETENTION_DAYS": days,
            "EARSHOT_RETENTION_INTERVAL_S": str(RETENTION_EVERY_S)}


def start(settings: Any, log_dir: Any, procs: ExitStack
          ) -> tuple[list[stack.Child], list[str], int]:
    """The workers, API processes, broker and bridges (stopped when `procs` closes);
    (children, API urls, the broker's port)."""
    children: list[stack.Child] = []
    for worker in setup.start_workers(settings, WORKERS, log_dir, **worker_env()):
        procs.callback(worker.stop)
        children.append(worker)
    urls = []
    for i in range(APIS):
        api, url = stack.start_api(settings, log_dir, EARSHOT_RATE_LIMIT_PER_S="1000000",
                                   EARSHOT_RATE_LIMIT_BURST="1000000")
        procs.callback(api.stop)
        api.name = f"api-{i}"
        children.append(api)
        urls.append(url)
    port, mqtt_children = soak_mqtt.start(settings, BRIDGES, log_dir, procs)
    return children + mqtt_children, urls, port


def prepare(conn: psycopg.Connection, shared: alert_models.Shared, sensors: int,
            pulses: int) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """Short chunks, the background and alert machines with the shared detector active."""
    for table in HYPERTABLES:
        conn.execute("SELECT set_chunk_time_interval(%s, %s::interval)",
                     (table, f"{CHUNK_S:g} seconds"))
    bg = stack.bulk_sensors(conn, sensors, 1, "soak-bg")
    alerting = stack.bulk_sensors(conn, pulses, 1, "soak-alert")
    alert_models.install(conn, shared, [m for m, _, _ in bg + alerting])
    return bg, alerting


def soak(conn: psycopg.Connection, children: list[stack.Child], endpoints: tuple[list[str], int],
         shared: alert_models.Shared, machines: tuple[list[Any], list[Any]],
         receiver: stack.Receiver, duration_s: float) -> dict[str, Any]:
    bg, alerting = machines
    urls, port = endpoints
    over_mqtt = int(len(bg) * MQTT_SHARE)
    start_at = time.time() + 5.0
    began = time.monotonic() + 5.0
    samples = [probe.sample(conn, children, -5.0)]  # before the load
    load = probe.Background(urls, [(s, tok) for _, s, tok in bg[over_mqtt:]], shared.normal,
                            duration_s, start_at).start()
    mqtt = soak_mqtt.Publisher(port, [s for _, s, _ in bg[:over_mqtt]], shared.normal,
                               duration_s, start_at).start()
    pulses = probe.Pulses(urls, alerting, shared, PULSE_EVERY_S, duration_s, began).start()
    for k in range(int(duration_s // SAMPLE_S) + 1):
        time.sleep(max(0.0, began + k * SAMPLE_S - time.monotonic()))
        samples.append(probe.sample(conn, children, k * SAMPLE_S))
        print(f"soak: {k * SAMPLE_S:.0f} s, load {samples[-1]['load']:.1f}, DB "
              f"{samples[-1]['db_bytes'] / 2**20:.0f} MiB", file=sys.stderr, flush=True)
    result = load.join()
    mqtt.join()
    pulses.thread.join(timeout=DRAIN_S)
    sent = sum(p.completed_at is not None for _, p in pulses.sent)
    with suppress(stack.StackError):  # a missing alert is reported, not fatal
        stack.wait_until(lambda: len(probe.alert_latencies(pulses, receiver)) >= sent,
                         DRAIN_S, "every pulse's alert webhook", interval_s=0.2)
    return {"samples": samples, "latencies": probe.alert_latencies(pulses, receiver),
            "alerts_sent": sent,
            "pulse_offsets": [o for o, p in pulses.sent if p.completed_at is not None],
            "pulse_errors": [p.error for _, p in pulses.sent if p.error],
            "bad_signatures": sum(not a.verified for a in receiver.snapshot()),
            "bg": {"windows": result.windows, "windows_per_s": result.windows_per_s,
                   "requests": result.requests, "errors": result.errors,
                   "error_samples": result.error_samples, "late_s": result.late_s,
                   "p95_ms": result.latency_ms(95), "gen_cpu_s": result.cpu_s,
                   "sensors": len(bg) - over_mqtt},
            "mqtt": mqtt.summary(conn, DRAIN_S)}


def collect(ctx: Context, duration_min: float, sensors: int) -> dict[str, Any]:
    shared, _ = alert_models.choose()
    duration_s = duration_min * 60
    log_dir = OUT_DIR / "logs" / "soak"
    log_dir.mkdir(parents=True, exist_ok=True)
    settings = stack.fresh_database(f"{stack.BENCH_DB}_soak")
    with ExitStack() as procs, stack.Receiver() as receiver:
        procs.callback(stack.drop_database, settings)
        conn = procs.enter_context(psycopg.connect(settings.resolved_database_url(),
                                                   autocommit=True))
        machines = prepare(conn, shared, sensors, ALERT_POOL)
        children, urls, port = start(settings, log_dir, procs)
        assert settings.admin_key is not None
        hook = stack.raise_for(httpx.post(
            f"{urls[0]}/v1/webhooks", json={"url": receiver.url, "events": ["alert.firing"]},
            headers={"Authorization": f"Bearer {settings.admin_key.get_secret_value()}"},
            timeout=30))
        receiver.secret = hook["secret"]
        raw = soak(conn, children, (urls, port), shared, machines, receiver, duration_s)
    return {**raw, "algorithm": shared.algorithm, "sensors": sensors, "minutes": duration_min,
            "workers": WORKERS, "apis": APIS, "bridges": BRIDGES, "retain_s": RETAIN_S,
            "chunk_s": CHUNK_S,
            "retention_every_s": RETENTION_EVERY_S, "sample_s": SAMPLE_S,
            "pulse_every_s": PULSE_EVERY_S, "alert_pool": ALERT_POOL,
            "cores": os.cpu_count()}


RAW = OUT_DIR / "soak-raw.json"


def run(ctx: Context) -> Section:
    duration = minutes(ctx)
    raw = collect(ctx, duration, QUICK_SENSORS if ctx.quick else SENSORS)
    RAW.write_text(json.dumps(raw, default=float))  # kept should rendering fail
    return render(raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=None)
    parser.add_argument("--sensors", type=int, default=SENSORS)
    args = parser.parse_args(argv)
    duration = args.minutes if args.minutes is not None else minutes(Context())
    section = render(collect(Context(), duration, args.sensors))
    print(section.render(f"_Measured with `python -m bench.soak {' '.join(argv or sys.argv[1:])}`"
                         f" (1-min load average at end: {os.getloadavg()[0]:.2f})._"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
