"""`earshot labels`: Audacity label tracks in and out of Earshot.

    earshot labels import labels.txt --url http://127.0.0.1:8000 --sensor ID \\
        --start 2026-12-06T10:00:00Z
    earshot labels export --url ... --machine ID --start ... --end ... [--events] > track.txt

`import` stores every label of the track (all or nothing) on the sensor's machine; the
track's 0 s is --start, the time of the recording's first sample. `export` writes the
machine's labels (or, with --events, the sound events detected from its predictions) as
a label track whose 0 s is --start; Audacity opens it with File > Import > Labels.
The API key comes from --key or EARSHOT_API_KEY (admin to import, read to export).

Exit status: 0 done, 1 refused (HTTP 4xx, the problem's detail is printed), 2 bad
arguments, 3 the service could not be reached or failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from ingest.codec import parse_rfc3339, to_rfc3339


class CommandError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earshot labels", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("EARSHOT_URL",
                                                        "http://127.0.0.1:8000"))
    common.add_argument("--key", default=os.environ.get("EARSHOT_API_KEY"),
                        help="API key (default $EARSHOT_API_KEY)")
    common.add_argument("--start", required=True, help="RFC 3339 time of the track's 0 s")
    common.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
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


def _uuid(value: str, flag: str) -> str:
    try:
        return str(UUID(value))
    except ValueError:
        raise CommandError(2, f"{flag} {value!r} is not an id (a UUID)") from None


def _time(value: str, flag: str) -> str:
    try:
        return to_rfc3339(parse_rfc3339(value))
    except (ValueError, OverflowError) as exc:
        raise CommandError(2, f"{flag}: {exc}") from None


def _checked(response: httpx.Response) -> httpx.Response:
    if response.status_code < 300:
        return response
    try:
        body: Any = response.json()
        detail = body.get("detail", response.text) if isinstance(body, dict) else body
    except ValueError:
        detail = response.text[:500]
    status = 1 if response.status_code < 500 else 3
    raise CommandError(status, f"refused (HTTP {response.status_code}): {detail}")


def _import(http: httpx.Client, args: argparse.Namespace) -> str:
    sensor = _uuid(args.sensor, "--sensor")
    start = _time(args.start, "--start")
    try:
        text = args.path.read_bytes()
    except OSError as exc:
        raise CommandError(2, f"cannot read {args.path}: {exc.strerror}") from None
    machine = _checked(http.get(f"/v1/sensors/{sensor}")).json()["machine_id"]
    result = _checked(http.post(f"/v1/machines/{machine}/labels.txt", content=text,
                                params={"sensor_id": sensor, "start": start},
                                headers={"Content-Type": "text/plain"})).json()
    return f"import: {result['created']} label(s) stored on machine {machine}"


def _export(http: httpx.Client, args: argparse.Namespace) -> str:
    machine = _uuid(args.machine, "--machine")
    params = {"start": _time(args.start, "--start"), "end": _time(args.end, "--end"),
              "source": "events" if args.events else "labels"}
    if args.sensor:
        params["sensor_id"] = _uuid(args.sensor, "--sensor")
    text = _checked(http.get(f"/v1/machines/{machine}/labels.txt", params=params)).text
    sys.stdout.write(text)
    return f"export: {text.count(chr(10))} label(s)"


def run(args: argparse.Namespace) -> str:
    if not args.key:
        raise CommandError(2, "--key (or EARSHOT_API_KEY) is required")
    headers = {"Authorization": f"Bearer {args.key}"}
    try:
        with httpx.Client(base_url=args.url.rstrip("/"), headers=headers,
                          timeout=args.timeout) as http:
            return _import(http, args) if args.command == "import" else _export(http, args)
    except httpx.HTTPError as exc:
        raise CommandError(3, f"{args.url} could not be reached: {exc}") from None


def main(argv: list[str]) -> None:
    args = _parser().parse_args(argv)
    try:
        print(run(args), file=sys.stderr)
    except CommandError as exc:
        print(f"earshot labels: {exc}", file=sys.stderr)
        sys.exit(exc.status)
