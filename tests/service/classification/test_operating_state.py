"""Operating state: a machine whose classifier says `off` raises anomaly alerts that are
recorded with `suppressed_reason` and sent to nobody; once it runs again, a real fault
alerts as usual. Real audio through the real API: BLDC motor M1 (healthy recordings are
its `running` class and the detector's baseline, propeller-fault recordings the fault);
`off` is what a microphone hears when this motor stops: the neighbouring MIMII valve, 30
dB down."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from service.alerting import delivery
from service.settings import Settings
from tests.conftest import DATA_DIR
from tests.service.alerting.conftest import wait_for
from tests.service.alerting.receiver import Receiver
from tests.service.classification.helpers import (
    load_16k,
    make_sensor,
    score_all,
    train,
    upload,
    wav,
    whole_seconds_ago,
)

BLDC = DATA_DIR / "bldc"
TRAIN_RPM = (1400, 1450, 1550, 1750, 1850, 1950)
OFF_GAIN = 10 ** (-30 / 20)


def _bldc(condition: str, rpm: int) -> bytes:
    return (BLDC / f"bldc_motor__{condition}_M1_{rpm}rpm.wav").read_bytes()


def _off(valve_id: str) -> bytes:
    path = DATA_DIR / "mimii" / f"mimii_0dB_singles__valve_id_{valve_id}_normal_00000000.wav"
    return wav(load_16k(path) * OFF_GAIN)


class Uploads:
    """Uploads 20 s apart, each scored before the next (as a live stream would be)."""

    def __init__(self, admin: TestClient, sensor_id: str, pool: ConnectionPool) -> None:
        self.admin, self.sensor_id, self.pool = admin, sensor_id, pool
        self.at = whole_seconds_ago(1800)

    def send(self, body: bytes, score: bool = True, **params: Any) -> datetime:
        started = self.at
        result = upload(self.admin, self.sensor_id, body, started, **params)
        self.at += timedelta(seconds=result["windows"] + 20)
        if score:
            score_all(self.pool)
        return started


def _alerts(admin: TestClient, machine_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = admin.get(
        "/v1/alerts", params={"machine_id": machine_id}).json()["items"]
    return sorted(items, key=lambda a: a["starts_at"])


def _train(admin: TestClient, settings: Settings, pool: ConnectionPool, uploads: Uploads,
           machine_id: str) -> None:
    for rpm in TRAIN_RPM:
        uploads.send(_bldc("healthy", rpm), score=False, baseline="true", label="running")
    for valve in ("00", "04"):
        uploads.send(_off(valve), score=False, label="off")
    assert score_all(pool) == (0, 0)
    for target, algorithm in (("detector", "mahalanobis"), ("classifier", "logreg")):
        assert admin.put(f"/v1/machines/{machine_id}/{target}",
                         json={"algorithm": algorithm}).status_code == 200
        job = train(admin, settings, pool, machine_id, target)
        assert job["state"] == "succeeded", job["error"]
    assert admin.put(f"/v1/machines/{machine_id}/alert-rule",
                     json={"k": 2, "n": 3, "clear_windows": 3}).status_code == 200
    assert admin.put(f"/v1/machines/{machine_id}/event-rules",
                     json={"state_label": "off"}).status_code == 200


def test_off_state_suppresses_anomaly_alerts(admin: TestClient, settings: Settings,
                                             pool: ConnectionPool, receiver: Receiver,
                                             conn: psycopg.Connection) -> None:
    machine_id, sensor_id = make_sensor(admin, name="motor-m1")
    uploads = Uploads(admin, sensor_id, pool)
    _train(admin, settings, pool, uploads, machine_id)
    hook = admin.post("/v1/webhooks", json={"url": receiver.url,
                                            "events": ["alert.firing", "alert.resolved"]})
    receiver.secret = hook.json()["secret"]
    stop = threading.Event()
    worker = threading.Thread(target=delivery.run, args=(settings, pool, stop), daemon=True)
    worker.start()
    try:
        off_at = uploads.send(_off("02"))  # held-out 'off' audio: nothing like running
        (suppressed,) = _alerts(admin, machine_id)
        assert suppressed["suppressed_reason"] == "operating_state:off"
        assert suppressed["notify_count"] == 0 and not suppressed["silenced"]
        labels = {p["label"] for p in admin.get(
            f"/v1/machines/{machine_id}/predictions",
            params={"start": off_at.isoformat(), "end": uploads.at.isoformat()}
        ).json()["items"]}
        assert labels == {"off"}

        uploads.send(_bldc("healthy", 1650))  # running normally again: resolves quietly
        assert _alerts(admin, machine_id)[0]["state"] == "resolved"
        uploads.send(_bldc("propeller", 1400))  # a real fault while running
        alerts = _alerts(admin, machine_id)
        assert len(alerts) == 2 and alerts[1]["suppressed_reason"] is None
        wait_for(lambda: receiver.of_type("alert.firing"), 20, "the fault's alert.firing")
        (fired,) = receiver.of_type("alert.firing")
        assert fired.verified and fired.payload["data"]["id"] == alerts[1]["id"]
        assert not receiver.of_type("alert.resolved")  # the suppressed one never went out
    finally:
        stop.set()
        worker.join(timeout=20)
    print(f"\nsuppressed alert: {suppressed['window_count']} windows, peak "
          f"{suppressed['peak_score']:.1f} (threshold {suppressed['threshold']:.1f}); "
          f"fault alert notified {alerts[1]['notify_count']}x")
    assert suppressed["peak_score"] > suppressed["threshold"]  # a real anomaly, held back


def test_suppressed_alert_is_notified_when_the_machine_runs_and_the_anomaly_persists(
        admin: TestClient, settings: Settings, pool: ConnectionPool, receiver: Receiver,
        conn: psycopg.Connection) -> None:
    machine_id, sensor_id = make_sensor(admin, name="motor-m1-renotify")
    uploads = Uploads(admin, sensor_id, pool)
    _train(admin, settings, pool, uploads, machine_id)
    # Resolution needs a whole clip of clear windows: a fault window dipping under the
    # clear level must not end the episode this test follows.
    assert admin.put(f"/v1/machines/{machine_id}/alert-rule",
                     json={"k": 2, "n": 3, "clear_windows": 12}).status_code == 200
    hook = admin.post("/v1/webhooks", json={"url": receiver.url, "events": ["alert.firing"]})
    receiver.secret = hook.json()["secret"]
    stop = threading.Event()
    worker = threading.Thread(target=delivery.run, args=(settings, pool, stop), daemon=True)
    worker.start()
    try:
        uploads.send(_off("02"))
        (held,) = _alerts(admin, machine_id)
        assert held["suppressed_reason"] == "operating_state:off" and held["notify_count"] == 0
        # No 20 s gap: the machine starts with the fault, so the same alert stays open.
        uploads.at -= timedelta(seconds=20)
        uploads.send(_bldc("propeller", 1400))
        (alert,) = _alerts(admin, machine_id)
        assert alert["id"] == held["id"] and alert["state"] == "firing"
        assert alert["suppressed_reason"] is None and alert["notify_count"] == 1
        wait_for(lambda: receiver.of_type("alert.firing"), 20, "the re-notified alert.firing")
        (fired,) = receiver.of_type("alert.firing")
        assert fired.verified and fired.payload["data"]["id"] == held["id"]
    finally:
        stop.set()
        worker.join(timeout=20)
