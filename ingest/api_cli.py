"""What the admin command lines (`earshot labels`, `earshot conditions`) share: the API
arguments, argument checks, the client and how refusals become exit statuses.

Exit status: 0 done, 1 refused (HTTP 4xx, the problem's detail is printed), 2 bad
arguments, 3 the service could not be reached or failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import httpx

from ingest.codec import parse_rfc3339, to_rfc3339


class CommandError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def api_arguments() -> argparse.ArgumentParser:
    """A parent parser: --url, --key, --timeout."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("EARSHOT_URL",
                                                        "http://127.0.0.1:8000"))
    common.add_argument("--key", default=os.environ.get("EARSHOT_API_KEY"),
                        help="API key (default $EARSHOT_API_KEY)")
    common.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    return common


def uuid_arg(value: str, flag: str) -> str:
    try:
        return str(UUID(value))
    except ValueError:
        raise CommandError(2, f"{flag} {value!r} is not an id (a UUID)") from None


def time_arg(value: str, flag: str) -> str:
    try:
        return to_rfc3339(parse_rfc3339(value))
    except (ValueError, OverflowError) as exc:
        raise CommandError(2, f"{flag}: {exc}") from None


def checked(response: httpx.Response) -> httpx.Response:
    if response.status_code < 300:
        return response
    try:
        body: Any = response.json()
        detail = body.get("detail", response.text) if isinstance(body, dict) else body
    except ValueError:
        detail = response.text[:500]
    status = 1 if response.status_code < 500 else 3
    raise CommandError(status, f"refused (HTTP {response.status_code}): {detail}")


@contextmanager
def api_client(args: argparse.Namespace) -> Iterator[httpx.Client]:
    """The API with the key of `args`; an unreachable service is exit status 3."""
    if not args.key:
        raise CommandError(2, "--key (or EARSHOT_API_KEY) is required")
    headers = {"Authorization": f"Bearer {args.key}"}
    try:
        with httpx.Client(base_url=args.url.rstrip("/"), headers=headers,
                          timeout=args.timeout) as http:
            yield http
    except httpx.HTTPError as exc:
        raise CommandError(3, f"{args.url} could not be reached: {exc}") from None


def run_command(name: str, parser: argparse.ArgumentParser,
                run: Callable[[argparse.Namespace], str], argv: list[str]) -> None:
    """Parse, run, print the summary to stderr; a CommandError exits with its status."""
    args = parser.parse_args(argv)
    try:
        print(run(args), file=sys.stderr)
    except CommandError as exc:
        print(f"earshot {name}: {exc}", file=sys.stderr)
        sys.exit(exc.status)
