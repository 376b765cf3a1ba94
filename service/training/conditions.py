"""Which operating condition each training window was recorded in.

A window gets the condition whose range covers its start; where declared ranges overlap,
the most recently declared one wins (a correction is declared on top of the old range).
Windows outside every range are in the machine's usual condition, :data:`DEFAULT`. The
detector receives the labels only when some window has a declared condition, so a machine
that never declared one trains exactly as before.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from datetime import datetime
from uuid import UUID

import numpy as np
import psycopg

from service.queries import conditions as condition_queries

DEFAULT = "default"


def label_windows(times: list[datetime],
                  ranges: list[tuple[datetime, datetime, str]]) -> np.ndarray | None:
    """A condition name per window (time-ordered), or None when no range covers any."""
    if not times or not ranges:
        return None
    names = np.full(len(times), DEFAULT, dtype=object)
    for start, end, name in ranges:  # oldest first: later declarations overwrite
        names[bisect_left(times, start):bisect_left(times, end)] = name
    return None if (names == DEFAULT).all() else names


def for_machine(conn: psycopg.Connection, machine_id: UUID,
                times: list[datetime]) -> np.ndarray | None:
    if not times:
        return None
    return label_windows(times, condition_queries.overlapping(conn, machine_id, times[0],
                                                              times[-1]))


def summary(names: np.ndarray | None) -> dict[str, int]:
    """Windows per condition, for the model's metrics."""
    return {} if names is None else dict(Counter(str(n) for n in names))
