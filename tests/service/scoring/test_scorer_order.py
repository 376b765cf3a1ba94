"""Two scorers and one sensor's consecutive batches: a scorer never takes a sensor's
batch while another holds an older one of that sensor, so the alert engine (which skips
a window older than one it already evaluated) sees every window in time order. Found by
the soak (docs/scaling.md): a burst of one-window requests split across two workers lost
its fault flags and never fired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from service.scoring.scorer import Scorer
from tests.service.scoring.factories import activate_model, bldc, ingest, make_machine


def test_a_sensors_later_batches_wait_for_the_older_one_another_scorer_holds(
        database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        machine_id, (sensor,) = make_machine(conn)
        activate_model(conn, machine_id)
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
        windows = np.concatenate([bldc("healthy", "test")[:5], bldc("propeller")[:3]])
        ingest(conn, sensor, start, windows, per_batch=1)  # 8 one-window batches
        ids = [r[0] for r in conn.execute("SELECT id FROM ingest_batches ORDER BY id")]
        conn.commit()
    with psycopg.connect(database_url) as first, psycopg.connect(database_url) as second:
        # The first scorer has claimed the 6 oldest batches (5 healthy windows, 1 fault).
        first.execute("SELECT id FROM ingest_batches WHERE id = ANY(%s) FOR UPDATE", (ids[:6],))
        # The second finds the 2 newest free, but leaves them: an older one is held.
        assert Scorer().step(second).claimed == 0
        assert second.execute("SELECT count(*) FROM scores").fetchone() == (0,)
        first.rollback()  # the claim ends (its scorer died or committed)
        steps = [Scorer().step(second) for _ in range(3)]
        assert sum(s.claimed for s in steps) == len(windows)
        scored = second.execute("SELECT count(*), count(*) FILTER (WHERE anomalous) FROM "
                                "scores WHERE sensor_id = %s", (sensor,)).fetchone()
        alerts = second.execute("SELECT count(*) FROM alerts WHERE machine_id = %s AND "
                                "type = 'anomaly'", (machine_id,)).fetchone()
    assert scored is not None and scored[0] == len(windows) and scored[1] >= 3
    assert alerts == (1,)
