"""Alert feedback changes what the next model trains on: a false-positive alert's windows
join the normal-operation data, a confirmed alert's windows are cut out of it."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

import numpy as np
import psycopg
from fastapi.testclient import TestClient

from ingest.store import insert_windows
from service.queries import training_data
from tests.service.alerting.conftest import feed, make_machine, now_s


def windows_at(conn: psycopg.Connection, sensor: UUID, start: datetime, n: int) -> None:
    times = int(start.timestamp() * 1e6) + np.arange(n, dtype=np.int64) * 1_000_000
    with conn.transaction():
        insert_windows(conn, sensor, times, np.ones((n, 128), dtype=np.float32))


def trained_on(conn: psycopg.Connection, machine_id: UUID, sensor: UUID) -> list[datetime]:
    ranges = training_data.training_ranges(conn, machine_id, None)
    found = training_data.training_windows(conn, [sensor], 128, ranges, 10_000).times
    conn.commit()
    return found


def test_feedback_changes_the_training_data(admin: TestClient,
                                            conn: psycopg.Connection) -> None:
    machine_id, (sensor,) = make_machine(conn)
    base = now_s() - timedelta(hours=2)
    with conn.transaction():
        conn.execute("INSERT INTO baselines (machine_id, start_at, end_at) VALUES (%s, %s, %s)",
                     (machine_id, base, base + timedelta(minutes=30)))
    inside = base + timedelta(minutes=10)  # an alert inside the baseline
    after = base + timedelta(minutes=60)  # an alert outside it
    for start in (inside, after):
        windows_at(conn, sensor, start, 5)
        feed(conn, machine_id, sensor, start, [3.0, 3.0, 3.0] + [0.1] * 10, 1.0)
    alerts = {row[1]: row[0] for row in conn.execute(
        "SELECT id, starts_at FROM alerts WHERE machine_id = %s", (machine_id,))}
    conn.commit()
    assert set(alerts) == {inside, after}
    in_baseline = [inside + timedelta(seconds=i) for i in range(5)]
    in_later_alert = [after + timedelta(seconds=i) for i in range(3)]  # its anomalous part
    before = trained_on(conn, machine_id, sensor)
    assert set(in_baseline) <= set(before) and not set(in_later_alert) & set(before)

    for alert_at, verdict in ((after, "false_positive"), (inside, "confirmed")):
        response = admin.post(f"/v1/alerts/{alerts[alert_at]}/feedback",
                              json={"verdict": verdict})
        assert response.status_code == 200, response.text

    now = trained_on(conn, machine_id, sensor)
    # The false positive's windows are training data now ...
    assert set(in_later_alert) <= set(now)
    # ... and the confirmed fault's anomalous windows no longer are, though the rest of
    # the baseline around them still is.
    assert not set(in_baseline[:3]) & set(now)
    assert set(in_baseline[3:]) <= set(now)
    ranges = training_data.training_ranges(conn, machine_id, None)
    assert ranges[0] == (base, inside) and len(ranges) == 3
