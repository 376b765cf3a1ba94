"""The `earshot` command: database, migrations and the service's processes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from pydantic import ValidationError

from service import pgcluster
from service.migrate import MigrationError, migrate
from service.settings import Settings, get_settings


def _settings_or_exit() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
                 for e in exc.errors()]
        sys.exit("earshot: bad configuration:\n" + "\n".join(lines))


def cmd_db(args: argparse.Namespace) -> None:
    settings = _settings_or_exit()
    if not settings.embedded_db:
        sys.exit("earshot: EARSHOT_DATABASE_URL is set: Earshot uses that database and "
                 "runs no cluster of its own")
    try:
        if args.action == "start":
            pgcluster.start(settings)
        elif args.action == "stop":
            pgcluster.stop(settings)
    except pgcluster.ClusterError as exc:
        sys.exit(f"earshot db {args.action}: {exc}")
    print(pgcluster.status(settings))


def cmd_migrate(_: argparse.Namespace) -> None:
    settings = _settings_or_exit()
    try:
        print(migrate(settings).strip() or "migrations: up to date")
    except MigrationError as exc:
        sys.exit(f"earshot migrate: {exc}")


def cmd_api(_: argparse.Namespace) -> None:
    import uvicorn

    settings = _settings_or_exit()
    uvicorn.run("service.app:app_from_env", factory=True, host=settings.host,
                port=settings.port, log_config=None, access_log=False)


def cmd_run(args: argparse.Namespace) -> None:
    from service.supervisor import run_all

    sys.exit(run_all(_settings_or_exit(), workers=args.workers, bridges=args.bridges))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earshot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    db = sub.add_parser("db", help="the embedded PostgreSQL + TimescaleDB cluster")
    db.add_argument("action", choices=["start", "stop", "status"])
    db.set_defaults(func=cmd_db)
    sub.add_parser("migrate", help="apply pending migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("api", help="run the HTTP API").set_defaults(func=cmd_api)
    run = sub.add_parser("run", help="database, migrations, API, worker(s) and MQTT "
                                     "bridge(s) in the foreground, restarted if they die")
    run.add_argument("--workers", type=int, default=1, choices=range(1, 65), metavar="N",
                     help="worker processes (default 1)")
    run.add_argument("--bridges", type=int, default=1, choices=range(0, 65), metavar="N",
                     help="MQTT bridges sharing the stream (default 1; ids "
                          "EARSHOT_MQTT_CLIENT_ID-1..N when more than one)")
    run.set_defaults(func=cmd_run)
    sub.add_parser("sensor", help="play recordings into Earshot as a sensor would "
                                  "(earshot sensor --help)", add_help=False)
    sub.add_parser("labels", help="Audacity label tracks in and out (earshot labels "
                                  "--help)", add_help=False)
    sub.add_parser("conditions", help="a machine's operating conditions over time ranges "
                                      "(earshot conditions --help)", add_help=False)
    for name, help_text, target in _extra_commands():
        sub.add_parser(name, help=help_text, add_help=False).set_defaults(func=target)
    return parser


def _extra_commands() -> list[tuple[str, str, Callable[[argparse.Namespace], None]]]:
    """Process entry points that live in their own packages."""

    def scheduler(_: argparse.Namespace) -> None:
        from service.scheduler.main import main as scheduler_main

        scheduler_main()

    def bridge(_: argparse.Namespace) -> None:
        from service.mqtt_bridge import main as bridge_main

        bridge_main()

    def audio_bridge(_: argparse.Namespace) -> None:
        from service.mqtt_audio import main as audio_bridge_main

        audio_bridge_main()

    worker_help = ("run a worker: scoring, training and webhook delivery shared with any "
                   "number of workers; the elected leader also runs the periodic duties")
    return [("worker", worker_help, scheduler),
            ("scheduler", "the same as `earshot worker` (its former name)", scheduler),
            ("bridge", "run the MQTT ingest bridge", bridge),
            ("audio-bridge", "run the MQTT audio bridge (earshot/sensors/+/audio)",
             audio_bridge)]


def _single_threaded_math() -> None:
    """One BLAS/OpenMP thread per process unless the operator says otherwise: on a small
    box, multi-threaded BLAS under load measured 10-20x slower (GMM fit 4.1 s vs 0.2 s)
    and the API, scheduler and bridge already run side by side."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def main(argv: list[str] | None = None) -> None:
    _single_threaded_math()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sensor"]:
        from ingest.client_cli import main as sensor_main

        sensor_main(argv[1:])
        return
    if argv[:1] == ["labels"]:
        from ingest.labels_cli import main as labels_main

        labels_main(argv[1:])
        return
    if argv[:1] == ["conditions"]:
        from ingest.conditions_cli import main as conditions_main

        conditions_main(argv[1:])
        return
    args = _parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
