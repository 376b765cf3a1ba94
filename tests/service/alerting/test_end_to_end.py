"""Real fault audio end to end: BLDC propeller-fault recordings, embedded with logmel-v1,
ingested, scored by the real scoring worker with a detector trained on healthy recordings
of the same motor, evaluated by the alert engine and delivered signed to a real receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import numpy as np
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from detectors import registry
from ingest.audio import audio_to_embeddings
from ingest.store import insert_windows
from service.scoring import worker as scoring_worker
from service.settings import Settings
from tests.conftest import DATA_DIR
from tests.service.alerting.conftest import WorkerThread, add_webhook, make_machine, now_s, wait_for
from tests.service.alerting.receiver import Receiver
from tests.service.alerting.test_lifecycle import activate_model

BLDC = DATA_DIR / "bldc"
TRAIN_RPM = (1400, 1450, 1550, 1750, 1850, 1950)


def embed(name: str) -> np.ndarray:
    vectors, _ = audio_to_embeddings((BLDC / name).read_bytes(), "logmel-v1", 3600)
    return vectors


@dataclass(frozen=True)
class Model:
    """The scorer's view of an active model (`service.scoring.scorer.ActiveModel`)."""

    detector: Any
    version: int = 1
    embedding_kind: str = "logmel-v1"
    dim: int = 128

    @property
    def threshold(self) -> float:
        return float(self.detector.threshold_)


@pytest.fixture(scope="module")
def audio() -> dict[str, Any]:
    healthy = np.vstack([embed(f"bldc_motor__healthy_M1_{rpm}rpm.wav") for rpm in TRAIN_RPM])
    return {
        "model": Model(registry.build("mahalanobis").fit(healthy)),
        "before": embed("bldc_motor__healthy_M1_2000rpm.wav"),
        "fault": [embed(f"bldc_motor__propeller_M1_{rpm}rpm.wav") for rpm in (1400, 1450)],
        "after": [embed(f"bldc_motor__healthy_M1_{rpm}rpm.wav") for rpm in (1650, 2000)],
    }


@pytest.fixture
def scoring(fast_settings: Settings, pool: ConnectionPool,
            audio: dict[str, Any]) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(target=scoring_worker.run, daemon=True,
                              args=(fast_settings, pool, stop),
                              kwargs={"loader": lambda _conn, _id: audio["model"]})
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=20)


def ingest(conn: psycopg.Connection, sensor: UUID, start_us: int, vectors: np.ndarray) -> int:
    """One sensor upload of consecutive 1 s windows, committed; the next start."""
    times = start_us + np.arange(len(vectors), dtype=np.int64) * 1_000_000
    with conn.transaction():
        insert_windows(conn, sensor, times, vectors.astype(np.float32))
    return int(times[-1]) + 1_000_000


def scored(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT count(*) FROM scores").fetchone()
    conn.commit()
    return int(row[0]) if row else 0


def alerts_of(conn: psycopg.Connection, machine_id: UUID) -> list[tuple[Any, ...]]:
    rows = conn.execute("SELECT state, peak_score, threshold, window_count FROM alerts "
                        "WHERE machine_id = %s", (machine_id,)).fetchall()
    conn.commit()
    return rows


@pytest.mark.slow
def test_fault_audio_fires_one_signed_alert_and_healthy_audio_resolves_it(
        conn: psycopg.Connection, receiver: Receiver, audio: dict[str, Any],
        scoring: None, worker: WorkerThread) -> None:
    machine_id, (sensor,) = make_machine(conn)
    activate_model(conn, machine_id)  # the scorer scores machines with an active model
    _, receiver.secret = add_webhook(conn, receiver.url)
    start = now_s() - timedelta(minutes=2)
    t_us = int(start.timestamp() * 1_000_000)
    t_us = ingest(conn, sensor, t_us, audio["before"])
    wait_for(lambda: scored(conn) == len(audio["before"]), 20, "healthy windows scored")
    assert alerts_of(conn, machine_id) == []
    committed = time.time()
    for vectors in audio["fault"]:
        t_us = ingest(conn, sensor, t_us, vectors)
    wait_for(lambda: receiver.of_type("alert.firing"), 20, "alert.firing")
    latency_ms = (receiver.of_type("alert.firing")[0].at - committed) * 1000
    print(f"\ningest commit -> alert.firing at the receiver: {latency_ms:.0f} ms")
    for vectors in audio["after"]:
        t_us = ingest(conn, sensor, t_us, vectors)
    wait_for(lambda: receiver.of_type("alert.resolved"), 20, "alert.resolved")
    time.sleep(0.5)  # anything extra (a second alert) would arrive by now
    got = receiver.snapshot()
    assert [r.payload["type"] for r in got] == ["alert.firing", "alert.resolved"]
    assert all(r.verified for r in got)
    ((state, peak, threshold, windows),) = alerts_of(conn, machine_id)
    assert state == "resolved" and peak > threshold == pytest.approx(audio["model"].threshold)
    fired = got[0].payload["data"]
    assert fired["model_version"] == 1 and fired["sensor_ids"] == [str(sensor)]
    # The alert starts where the fault recordings begin: at the first anomalous window of
    # its k-of-n group (the healthy clip's last window already scores above threshold).
    fault_start = start + timedelta(seconds=len(audio["before"]))
    starts_at = datetime.fromisoformat(fired["starts_at"].replace("Z", "+00:00"))
    assert abs(starts_at - fault_start) <= timedelta(seconds=2)
    assert windows >= 20
