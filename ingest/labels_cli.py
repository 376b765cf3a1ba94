"""`earshot labels`: Audacity label tracks in and out of Earshot.

    earshot labels import labels.txt --url http://127.0.0.1:8000 --sensor ID \\
        --start 2026-12-06T10:00:00Z
    earshot labels export --url ... --machine ID --start ... --end ... [--events] > track.txt

`import` stores every label of the track (all or nothing) on the sensor's machine; the
track's 0 s is --start, the time of the recording's first sample. `export` writes the
machine's labels (or, with --events, the sound events detected from its predictions) as
a label track whose 0 s is --start; Audacity opens it with File > Import > Labels.
The API key comes from --key or EARSHOT_API_KEY (admin to import, read to export).

Exit status: see `ingest.api_cli`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

from ingest.api_cli import (
    CommandError,
    api_arguments,
    api_client,
    checked,
    run_command,
    time_arg,
    uuid_arg,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earshot labels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False, parents=[api_arguments()])
    common.add_argument("--start", required=True, help="RFC 3339 time of the track's 0 s")
    imp = sub.add_parser("import", parents=[common], help="store an Audacity label track")
    imp.add_argument("path", type=Path)
    imp.add_argument("--sensor", required=True, help="the sensor that recorded the audio")
    exp = sub.add_parser("export", parents=[common], help="write a label track to stdout")
    exp.add_argument("--machine", required=True)
    exp.add_argument("--end", required=True, help="RFC 3339, exclusive")
    exp.add_argument("--events", action="store_true",
                     help="detected sound events instead of the stored labels")
    exp.add_argument("--sensor", help="with --events: events of this sensor only")
    return parser


def _import(http: httpx.Client, args: argparse.Namespace) -> str:
    sensor = uuid_arg(args.sensor, "--sensor")
    start = time_arg(args.start, "--start")
    try:
        text = args.path.read_bytes()
    except OSError as exc:
        raise CommandError(2, f"cannot read {args.path}: {exc.strerror}") from None
    machine = checked(http.get(f"/v1/sensors/{sensor}")).json()["machine_id"]
    result = checked(http.post(f"/v1/machines/{machine}/labels.txt", content=text,
                                params={"sensor_id": sensor, "start": start},
                                headers={"Content-Type": "text/plain"})).json()
    return f"import: {result['created']} label(s) stored on machine {machine}"


def _export(http: httpx.Client, args: argparse.Namespace) -> str:
    machine = uuid_arg(args.machine, "--machine")
    params = {"start": time_arg(args.start, "--start"), "end": time_arg(args.end, "--end"),
              "source": "events" if args.events else "labels"}
    if args.sensor:
        params["sensor_id"] = uuid_arg(args.sensor, "--sensor")
    text = checked(http.get(f"/v1/machines/{machine}/labels.txt", params=params)).text
    sys.stdout.write(text)
    return f"export: {text.count(chr(10))} label(s)"


def run(args: argparse.Namespace) -> str:
    with api_client(args) as http:
        return _import(http, args) if args.command == "import" else _export(http, args)


def main(argv: list[str]) -> None:
    run_command("labels", _parser(), run, argv)
