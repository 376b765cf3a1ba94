"""The API process is SIGKILLed (twice) while a client ingests with retries; after each
restart on the same port the client carries on. Every acknowledged window is then stored
exactly once, bit for bit."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from uuid import UUID

import httpx
import numpy as np
import psycopg
import pytest

from ingest.store import decode_vectors
from service.settings import Settings
from tests.faults.procs import ApiProcess, Attempts, Batch, batches, make_sensor, post_with_retry

DIM = 64
BATCHES, SIZE = 60, 400  # ~100 KB per request: big enough to be killed mid-request
KILLS = 2
DEADLINE_S = 90.0


class Ingester(threading.Thread):
    def __init__(self, url: str, token: str, work: list[Batch]) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.work = url, token, work
        self.acked: list[int] = []
        self.seen = Attempts()

    def run(self) -> None:
        deadline = time.monotonic() + DEADLINE_S
        with httpx.Client(timeout=10.0) as client:
            for i, batch in enumerate(self.work):
                if not post_with_retry(client, self.url, self.token, batch, deadline,
                                       self.seen, pause_s=0.05):
                    return
                self.acked.append(i)


def stored(conn: psycopg.Connection, sensor_id: str) -> tuple[np.ndarray, np.ndarray]:
    rows = conn.execute("SELECT (extract(epoch FROM t - 'epoch'::timestamptz) * 1e6)::int8, v "
                        "FROM embeddings WHERE sensor_id = %s ORDER BY t",
                        (UUID(sensor_id),)).fetchall()
    return (np.array([r[0] for r in rows], dtype=np.int64),
            decode_vectors([r[1] for r in rows], DIM))


@pytest.mark.slow
def test_sigkill_during_ingest_loses_and_doubles_nothing(settings: Settings,
                                                         conn: psycopg.Connection,
                                                         tmp_path: Path) -> None:
    api = ApiProcess(settings, tmp_path / "api.log")
    api.start()
    try:
        _, sensor_id, token = make_sensor(api.url, DIM)
        work = batches(BATCHES, SIZE, DIM)
        ingester = Ingester(f"{api.url}/v1/sensors/{sensor_id}/embeddings", token, work)
        ingester.start()
        for k in range(KILLS):
            target = (k + 1) * BATCHES // (KILLS + 1)
            deadline = time.monotonic() + 30
            while len(ingester.acked) < target and time.monotonic() < deadline:
                time.sleep(0.005)
            api.kill()
            time.sleep(0.3)  # the client meets a dead port for a while
            api.start()
        ingester.join(timeout=DEADLINE_S + 5)
    finally:
        api.stop()
    assert not ingester.is_alive()
    assert ingester.acked == list(range(BATCHES)), api.tail()
    assert ingester.seen.transport_errors > 0, "the kills never hit the client"
    times, values = stored(conn, sensor_id)
    expected_t = np.concatenate([b.times_us for b in work])
    expected_v = np.concatenate([b.values for b in work])
    assert len(times) == BATCHES * SIZE  # exactly once: no loss, no double
    order = np.argsort(expected_t)
    assert np.array_equal(times, expected_t[order])
    # Bit-exact: compare the raw float32 bits, so -0.0 and tiny subnormals count too.
    assert np.array_equal(values.view(np.uint32), expected_v[order].view(np.uint32))
    queued = conn.execute("SELECT coalesce(sum(n), 0) FROM ingest_batches WHERE sensor_id = %s",
                          (UUID(sensor_id),)).fetchone()
    assert queued is not None and queued[0] == BATCHES * SIZE  # every stored window queued
