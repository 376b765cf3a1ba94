"""What the scheduler process runs besides training, by name ("module:function").

- BACKGROUND_LOOPS: each runs as `fn(settings, pool, stop: threading.Event) -> None` in
  its own thread and must return soon after `stop` is set.
- PERIODIC_JOBS: (name, interval_seconds); each runs as `fn(settings, pool) -> None` via
  APScheduler (coalesced, never two at once), so it must be idempotent and guard itself
  (e.g. an advisory lock) against another scheduler process running the same job.
  INTERVAL_SETTINGS names the ones whose interval a setting overrides.

Every entry must import: the process refuses to start otherwise, so a typo or a missing
module is a startup error, not a silently missing feature.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

BACKGROUND_LOOPS: list[str] = [
    "service.scoring.worker:run",
    "service.alerting.delivery:run",
    "service.reembed:run",
    "service.fleet.train:run",
]
PERIODIC_JOBS: list[tuple[str, float]] = [
    ("service.scoring.rollups:refresh", 10.0),
    ("service.scoring.retention:enforce", 3600.0),
    ("service.alerting.nodata:check", 15.0),
    ("service.fleet.schedule:enqueue_due", 3600.0),
]
# Periodic jobs whose interval is a setting (the value above is its default).
INTERVAL_SETTINGS: dict[str, str] = {"service.scoring.retention:enforce": "retention_interval_s"}


class RegistryError(Exception):
    """An entry that cannot be imported or is not callable."""


def resolve(name: str) -> Callable[..., Any]:
    module_name, sep, attr = name.partition(":")
    if not sep or not module_name or not attr:
        raise RegistryError(f"{name!r}: expected 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise RegistryError(f"{name!r}: cannot import {module_name}: {exc}") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise RegistryError(f"{name!r}: {module_name} has no function {attr!r}")
    return fn


def resolve_all(names: list[str]) -> dict[str, Callable[..., Any]]:
    """Every entry resolved, or one RegistryError listing all that failed."""
    resolved: dict[str, Callable[..., Any]] = {}
    problems: list[str] = []
    for name in names:
        try:
            resolved[name] = resolve(name)
        except RegistryError as exc:
            problems.append(str(exc))
    if problems:
        raise RegistryError("; ".join(problems))
    return resolved
