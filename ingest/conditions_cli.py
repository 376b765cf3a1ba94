"""`earshot conditions`: a machine's operating conditions over time ranges.

    earshot conditions add --machine ID --start 2026-12-06T10:00:00Z \\
        --end 2026-12-06T10:05:00Z [--name 1800rpm] [--attr rpm=1800 --attr load=high]
    earshot conditions list --machine ID
    earshot conditions delete --machine ID CONDITION_ID

Detector training gives each window the condition whose range covers it (docs/detectors.md,
"Operating conditions"); a sensor can also declare its condition with its windows
(`earshot sensor stream --condition`, `earshot sensor upload --condition`). `--attr`
values that read as numbers or true/false are sent as such. The API key comes from --key or
EARSHOT_API_KEY (admin to add and delete, read to list).

Exit status: see `ingest.api_cli`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

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
from ingest.conditions import AttributeValue, attribute_value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="earshot conditions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False, parents=[api_arguments()])
    common.add_argument("--machine", required=True, help="the machine's id")
    add = sub.add_parser("add", parents=[common], help="declare a condition for a range")
    add.add_argument("--start", required=True, help="RFC 3339")
    add.add_argument("--end", required=True, help="RFC 3339, exclusive")
    add.add_argument("--name", help="e.g. 1800rpm (default: named after the attributes)")
    add.add_argument("--attr", action="append", default=[], metavar="KEY=VALUE",
                     help="an attribute, e.g. rpm=1800 (repeatable)")
    sub.add_parser("list", parents=[common], help="the machine's condition ranges (JSON)")
    delete = sub.add_parser("delete", parents=[common], help="remove one range")
    delete.add_argument("condition_id")
    return parser


def attributes(pairs: list[str]) -> dict[str, AttributeValue]:
    """``["rpm=1800", "load=high"]`` -> ``{"rpm": 1800, "load": "high"}``."""
    out: dict[str, AttributeValue] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CommandError(2, f"--attr {pair!r} is not KEY=VALUE")
        out[key] = attribute_value(value)
    return out


def _add(http: httpx.Client, machine: str, args: argparse.Namespace) -> str:
    body: dict[str, Any] = {"start": time_arg(args.start, "--start"),
                            "end": time_arg(args.end, "--end"), "attributes": attributes(args.attr)}
    if args.name is not None:
        body["name"] = args.name
    row = checked(http.post(f"/v1/machines/{machine}/conditions", json=body)).json()
    print(row["id"])
    return f"add: condition {row['name']!r} {row['start']} - {row['end']} ({row['id']})"


def _list(http: httpx.Client, machine: str) -> str:
    items: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = checked(http.get(f"/v1/machines/{machine}/conditions",
                                 params={"limit": 500, "offset": offset})).json()
        items += page["items"]
        offset = page["next_offset"]
    for item in items:
        print(json.dumps(item, sort_keys=True))
    return f"list: {len(items)} condition range(s)"


def run(args: argparse.Namespace) -> str:
    machine = uuid_arg(args.machine, "--machine")
    with api_client(args) as http:
        if args.command == "add":
            return _add(http, machine, args)
        if args.command == "list":
            return _list(http, machine)
        condition = uuid_arg(args.condition_id, "CONDITION_ID")
        checked(http.delete(f"/v1/machines/{machine}/conditions/{condition}"))
        return f"delete: condition {condition} removed"


def main(argv: list[str]) -> None:
    run_command("conditions", _parser(), run, argv)
