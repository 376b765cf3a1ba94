"""Audio retention on the real database: live audio goes by arrival time; audio that is
training material (baselines, labels) or alert evidence (+- the margin) is pinned before
that and kept as long as what pins it, including pins declared after the upload."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import soundfile as sf
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from service.scoring import retention
from service.settings import Settings


def _wav(seconds: int) -> bytes:
    rng = np.random.default_rng(seconds)
    buffer = io.BytesIO()
    sf.write(buffer, rng.normal(0, 0.1, (seconds * 16000, 1)), 16000, format="WAV",
             subtype="PCM_16")
    return buffer.getvalue()


def _held(admin: TestClient, sensor_id: str, start: datetime) -> int:
    return admin.get(f"/v1/sensors/{sensor_id}/audio", params={
        "start": start.isoformat(), "end": (start + timedelta(seconds=5)).isoformat()
    }).status_code


def _count(conn: psycopg.Connection, table: str) -> int:
    row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()  # table: test constants
    conn.commit()
    return int(row[0]) if row else -1


def test_pinned_audio_outlives_live_retention(admin: TestClient, conn: psycopg.Connection,
                                              settings: Settings, pool: ConnectionPool) -> None:
    machine = admin.post("/v1/machines", json={"name": "pump", "kind": "pump"}).json()["id"]
    sensor = admin.post(f"/v1/machines/{machine}/sensors", json={
        "name": "mic", "embedding": {"kind": "logmel-v1"}}).json()["id"]
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)  # backfilled history
    starts = {name: base + timedelta(minutes=10 * k) for k, name in
              enumerate(("baseline", "label", "alert", "loose"))}
    for start in starts.values():
        stored = admin.post(f"/v1/sensors/{sensor}/audio", content=_wav(20),
                            params={"start": start.isoformat()},
                            headers={"content-type": "audio/wav"})
        assert stored.status_code == 200, stored.text
    # Backfilled audio is not dropped for its old timestamps: it counts from arrival.
    assert retention.enforce(settings, pool)["audio_chunks"] == 0
    assert _count(conn, "audio_chunks") == 4

    # Declared after the upload: a baseline and a label over two clips, and an alert that
    # ended 40 s before the third clip (inside the 60 s evidence margin).
    window = {"start": starts["baseline"].isoformat(),
              "end": (starts["baseline"] + timedelta(seconds=5)).isoformat()}
    baseline = admin.post(f"/v1/machines/{machine}/baselines", json=window).json()["id"]
    conn.execute("INSERT INTO labels (machine_id, start_at, end_at, label) VALUES (%s, %s, %s, "
                 "'squeal')", (machine, starts["label"], starts["label"] + timedelta(seconds=3)))
    alert_end = starts["alert"] - timedelta(seconds=40)
    conn.execute("INSERT INTO alerts (machine_id, type, state, starts_at, ends_at, resolved_at) "
                 "VALUES (%s, 'anomaly', 'resolved', %s, %s, %s)",
                 (machine, alert_end - timedelta(minutes=1), alert_end, alert_end))
    conn.commit()

    later = datetime.now(UTC) + timedelta(hours=settings.audio_retention_hours + 7)
    removed = retention.enforce(settings, pool, now=later)
    assert removed["audio_pinned"] == 3 and removed["audio_chunks"] >= 1
    assert _count(conn, "audio_chunks") == 0 and _count(conn, "audio_pinned") == 3
    assert [_held(admin, sensor, starts[k]) for k in ("baseline", "label", "alert", "loose")] \
        == [200, 200, 200, 404]

    # The baseline goes: its audio is released; the others stay pinned.
    assert admin.delete(f"/v1/machines/{machine}/baselines/{baseline}").status_code == 204
    assert retention.enforce(settings, pool, now=later)["audio_released"] == 1
    assert _held(admin, sensor, starts["baseline"]) == 404
    assert _held(admin, sensor, starts["label"]) == 200
