"""`/v1/machines/{id}/predictions|classes|events` and `/event-rules` on a classifier
trained through the API on real ESC-10 clips (chainsaw vs rooster), with a recording of
held-out clips predicted by the scorer; `event.detected` delivered signed to a real
receiver on 127.0.0.1, once per event even when windows are predicted again."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from service.alerting import delivery
from service.settings import Settings
from tests.service.alerting.conftest import wait_for
from tests.service.alerting.receiver import Receiver
from tests.service.classification.helpers import (
    count,
    esc10_clips,
    labelled_machine,
    load_16k,
    problem,
    score_all,
    train,
    upload,
    wav,
)

CLASSES = ("chainsaw", "rooster")
# Held-out clips, back to back: rooster, chainsaw, rooster (about 15 s).
SEQUENCE = (("rooster", 4), ("chainsaw", 4), ("rooster", 5))


@pytest.fixture
def predicted(admin: TestClient, settings: Settings, pool: ConnectionPool,
              receiver: Receiver) -> Iterator[dict[str, Any]]:
    """A trained machine, an event rule announcing chainsaw, a subscribed receiver with
    the delivery worker running, and the held-out recording uploaded and predicted."""
    machine_id, sensor_id, after = labelled_machine(admin, CLASSES, 3, name="yard")
    assert score_all(pool) == (0, 0)
    assert admin.put(f"/v1/machines/{machine_id}/classifier",
                     json={"algorithm": "logreg"}).status_code == 200
    assert train(admin, settings, pool, machine_id)["state"] == "succeeded"
    assert admin.put(f"/v1/machines/{machine_id}/event-rules",
                     json={"notify_labels": ["chainsaw"]}).status_code == 200
    hook = admin.post("/v1/webhooks", json={"url": receiver.url,
                                            "events": ["event.detected"]})
    assert hook.status_code == 201, hook.text
    receiver.secret = hook.json()["secret"]
    samples = np.concatenate([load_16k(esc10_clips(c)[i]) for c, i in SEQUENCE])
    start = after + timedelta(seconds=60)
    result = upload(admin, sensor_id, wav(samples), start)
    stop = threading.Event()
    worker = threading.Thread(target=delivery.run, args=(settings, pool, stop), daemon=True)
    worker.start()
    try:
        yield {"machine_id": machine_id, "sensor_id": sensor_id, "start": start,
               "end": start + timedelta(seconds=result["windows"]),
               "windows": result["windows"], "scored": score_all(pool)}
    finally:
        stop.set()
        worker.join(timeout=20)


def test_predictions_pages_and_exactly_once(admin: TestClient, pool: ConnectionPool,
                                            conn: psycopg.Connection,
                                            predicted: dict[str, Any]) -> None:
    machine_id, n = predicted["machine_id"], predicted["windows"]
    assert predicted["scored"] == (0, n)  # no detector: predictions only
    url = f"/v1/machines/{machine_id}/predictions"
    span = {"start": predicted["start"].isoformat(), "end": predicted["end"].isoformat()}
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(n):
        page = admin.get(url, params={**span, "limit": 4, **({"cursor": cursor} if cursor
                                                               else {})}).json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(items) == n and [i["t"] for i in items] == sorted(i["t"] for i in items)
    first = items[0]
    assert set(first["probabilities"]) == set(CLASSES)
    assert first["label"] == max(first["probabilities"], key=first["probabilities"].get)
    assert first["confidence"] == pytest.approx(max(first["probabilities"].values()))
    chainsaw = admin.get(url, params={**span, "label": "chainsaw"}).json()["items"]
    assert 0 < len(chainsaw) < n and all(i["label"] == "chainsaw" for i in chainsaw)

    # The batch queued again (a retried ingest, a second scorer): nothing is stored twice.
    conn.execute("INSERT INTO ingest_batches (sensor_id, t_min, t_max, n) VALUES "
                 "(%s, %s, %s, %s)", (predicted["sensor_id"], predicted["start"],
                                      predicted["end"], n))
    conn.commit()
    assert score_all(pool) == (0, 0)
    assert count(conn, "SELECT count(*) FROM predictions") == n

    problem(admin.get(url, params={"cursor": "nonsense"}), 422, "cursor")
    problem(admin.get(url, params={"start": span["end"], "end": span["start"]}), 422,
            "end must be after start")
    problem(admin.get(f"/v1/machines/{uuid.uuid4()}/predictions"), 404, "does not exist")


def test_classes_buckets(admin: TestClient, predicted: dict[str, Any]) -> None:
    url = f"/v1/machines/{predicted['machine_id']}/classes"
    start: datetime = predicted["start"]
    body = admin.get(url, params={"start": (start - timedelta(seconds=10)).isoformat(),
                                  "end": predicted["end"].isoformat(), "step": "5s"}).json()
    assert body["step"] == 5
    buckets = body["buckets"]
    assert sum(b["n"] for b in buckets) == predicted["windows"]
    assert buckets[0]["n"] == 0 and buckets[0]["dominant"] is None  # gap-filled
    for bucket in (b for b in buckets if b["n"]):
        assert sum(bucket["fractions"].values()) == pytest.approx(1.0)
        assert bucket["dominant"] == max(bucket["fractions"], key=bucket["fractions"].get)
    dominant = [b["dominant"] for b in buckets if b["n"]]
    assert "chainsaw" in dominant and "rooster" in dominant
    problem(admin.get(url, params={"step": "fortnight"}), 422, "step")


def test_events_and_their_announcement(admin: TestClient, pool: ConnectionPool,
                                       receiver: Receiver, conn: psycopg.Connection,
                                       predicted: dict[str, Any]) -> None:
    machine_id, start = predicted["machine_id"], predicted["start"]
    url = f"/v1/machines/{machine_id}/events"
    span = {"start": start.isoformat(), "end": predicted["end"].isoformat()}
    body = admin.get(url, params=span).json()
    saws = [e for e in body["items"] if e["label"] == "chainsaw"]
    assert len(saws) == 1 and not body["truncated"]
    saw = saws[0]
    # The chainsaw clip starts about 5 s in and lasts about 5 s.
    onset = (datetime.fromisoformat(saw["start"]) - start).total_seconds()
    assert 3.5 <= onset <= 6.5 and 0.5 <= saw["confidence"] <= 1.0
    assert body["params"]["chainsaw"]["on"] == 0.5
    only = admin.get(url, params={**span, "label": "rooster"}).json()["items"]
    assert only and {e["label"] for e in only} == {"rooster"}

    wait_for(lambda: len(receiver.of_type("event.detected")) >= 1, 20, "event.detected")
    (delivered,) = receiver.of_type("event.detected")
    assert delivered.verified
    data = delivered.payload["data"]
    assert (data["label"], data["start"][:19]) == ("chainsaw", saw["start"][:19])
    assert data["sensor_id"] == predicted["sensor_id"] and data["model_version"] == 1
    assert data["links"]["events"].startswith(f"/v1/machines/{machine_id}/events?")
    # Predicted again (re-queued batch): the event is already announced.
    conn.execute("INSERT INTO ingest_batches (sensor_id, t_min, t_max, n) VALUES "
                 "(%s, %s, %s, %s)", (predicted["sensor_id"], start, predicted["end"], 1))
    conn.commit()
    score_all(pool)
    assert count(conn, "SELECT count(*) FROM detected_events") == 1
    assert count(conn, "SELECT count(*) FROM webhook_messages "
                       "WHERE event_type = 'event.detected'") == 1


def test_event_rules(admin: TestClient) -> None:
    machine = admin.post("/v1/machines", json={"name": "press", "kind": "press"}).json()
    url = f"/v1/machines/{machine['id']}/event-rules"
    default = admin.get(url).json()
    assert default["updated_at"] is None and default["notify_labels"] == []
    assert default["params"] == {"smoothing": 3, "on": 0.5, "off": 0.3,
                                 "min_duration_s": 0.5, "merge_gap_s": 0.5}
    saved = admin.put(url, json={"notify_labels": ["impact", "squeal", "impact"],
                                 "params": {"smoothing": 5},
                                 "class_params": {"impact": {"min_duration_s": 0.0}},
                                 "state_label": "off", "state_max_age": 30})
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["notify_labels"] == ["impact", "squeal"]
    assert body["class_params"]["impact"]["min_duration_s"] == 0.0
    assert body["class_params"]["impact"]["smoothing"] == 5  # inherited
    assert body["state_label"] == "off" and body["updated_at"] is not None
    assert admin.get(url).json() == body
    bad = problem(admin.put(url, json={"params": {"on": 0.2, "off": 0.4}}), 422,
                  "must not exceed on")
    assert bad["errors"]
    problem(admin.put(url, json={"class_params": {"impact": {"off": 0.9}, "x": {"s": 1}}}),
            422, "class_params.impact", "unknown parameter 's'")
    problem(admin.put(url, json={"notify_labels": ["no spaces"]}), 422)
    problem(admin.put(f"/v1/machines/{uuid.uuid4()}/event-rules", json={}), 404)
    problem(admin.get(f"/v1/machines/{uuid.uuid4()}/event-rules"), 404)
    assert admin.get(url).json() == body
