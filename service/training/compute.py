"""Where the CPU-heavy part of training runs: in this process, or on a Dask distributed
cluster when `EARSHOT_DASK_SCHEDULER` (tcp://host:8786) is set.

The worker that claimed a job reads the training data, ships it with the pure fit function
to the cluster, waits for the result and stores it itself (one transaction re-checking its
claim, `service.training.runner.finish`), so the database is never written from a Dask
worker and needs no credentials there. Dask reruns a task whose worker died on another
worker (up to `distributed.scheduler.allowed-failures` deaths, then `KilledWorker`), and
the claiming worker keeps heartbeating the job meanwhile: a Dask worker killed mid-fit
costs a rerun, never the job and never a second model. A claiming worker killed while it
waits: its job goes stale and is re-queued; its cluster task is released with its client.

Tasks are submitted `pure=False` (every attempt runs) under a key naming the job and its
attempt, so the cluster's dashboard shows what runs where.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger("earshot.training")
T = TypeVar("T")
CONNECT_TIMEOUT_S = 10

_lock = threading.Lock()
_clients: dict[str, Any] = {}  # scheduler address -> distributed.Client, one per process


class ClusterUnavailableError(Exception):
    """The Dask scheduler cannot be reached or lost the task: not the job's fault, so the
    job goes back to the queue instead of failing."""


def _client(address: str) -> Any:
    from distributed import Client

    with _lock:
        client = _clients.get(address)
        if client is None or client.status in ("closed", "closing"):
            # set_as_default=False: this process's own dask calls stay local.
            client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
            _clients[address] = client
        return client


def _forget(address: str) -> None:
    with _lock:
        client = _clients.pop(address, None)
    if client is not None:
        try:
            client.close(timeout=CONNECT_TIMEOUT_S)
        except Exception:  # closing a broken client: nothing left to save
            log.debug("closing the Dask client failed", exc_info=True)


def run(fn: Callable[..., T], *args: Any, scheduler: str | None, key: str) -> T:
    """`fn(*args)` here (no scheduler) or on the cluster; its exceptions propagate either
    way. Infrastructure failures raise ClusterUnavailableError."""
    if scheduler is None:
        return fn(*args)
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError

    try:
        future = _client(scheduler).submit(fn, *args, pure=False, key=key)
    except (OSError, TimeoutError) as exc:
        _forget(scheduler)
        raise ClusterUnavailableError(f"Dask scheduler {scheduler} unreachable: {exc}") from exc
    try:
        result: T = future.result()
    except KilledWorker:
        raise  # the task killed every worker it ran on: the job's own failure
    except (OSError, TimeoutError, FutureCancelledError) as exc:
        _forget(scheduler)
        raise ClusterUnavailableError(f"Dask scheduler {scheduler} lost task {key}: "
                                      f"{type(exc).__name__}: {exc}") from exc
    finally:
        future.release()
    return result
