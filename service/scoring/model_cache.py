"""The loaded models of one scorer, per machine: a detector or classifier is loaded the
first time a batch of its machine needs it and reloaded only when the machine's active
version changes or it fell out of the bounded cache (least recently used first,
Settings.scoring_model_cache), so a worker's memory stays bounded however many machines it
serves."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from uuid import UUID

import psycopg
from cachetools import LRUCache

from service.queries import scores as q

log = logging.getLogger("earshot.scoring")

Loader = Callable[[psycopg.Connection, UUID], Any]


class MachineModels:
    """`target`'s active model per machine; `version_of` reads the version a claimed batch
    expects (None: the machine has no active model of that target)."""

    def __init__(self, target: str, loader: Loader,
                 version_of: Callable[[q.ClaimedBatch], int | None], maxsize: int) -> None:
        self._target, self._loader, self._version_of = target, loader, version_of
        self._loaded: LRUCache[UUID, Any] = LRUCache(maxsize=maxsize)

    def __len__(self) -> int:
        return len(self._loaded)

    def for_batches(self, conn: psycopg.Connection,
                    batches: list[q.ClaimedBatch]) -> dict[UUID, Any]:
        wanted = {b.machine_id: version for b in batches
                  if b.machine_id is not None and (version := self._version_of(b)) is not None}
        found: dict[UUID, Any] = {}
        for machine_id, version in wanted.items():
            cached = self._loaded.get(machine_id)
            if cached is None or cached.version != version:
                cached = self._load(conn, machine_id)
            if cached is not None:
                self._loaded[machine_id] = found[machine_id] = cached
        return found

    def _load(self, conn: psycopg.Connection, machine_id: UUID) -> Any:
        try:
            with conn.transaction():
                return self._loader(conn, machine_id)
        except Exception:
            # An unloadable model (e.g. a tampered artifact) must not block every other
            # machine: its batches are retired unscored (unpredicted), and the error logged.
            log.exception("cannot load the active %s", self._target,
                          extra={"machine_id": machine_id})
            return None
