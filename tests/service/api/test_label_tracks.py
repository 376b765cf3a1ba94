"""`/v1/machines/{id}/labels.txt`: Audacity label tracks over real uploaded ESC-10 audio.
Import stores all lines or none (a bad line is a 422 naming it); export gives back the
labels, and the sound events a classifier trained on imported labels detects, as tracks
Audacity reads."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from ingest.label_track import parse
from service.settings import Settings
from tests.service.classification.helpers import (
    count,
    esc10_clips,
    load_16k,
    make_sensor,
    problem,
    score_all,
    train,
    upload,
    wav,
    whole_seconds_ago,
)

LABELS = "SELECT count(*) FROM labels"
# As Audacity exports it: a region per clip, a point label, a spectral selection line.
TRACK = ("0.000000\t5.000000\tdog_bark\n"
         "5.000000\t10.000000\train\n"
         "\\\t100.000000\t4000.000000\n"
         "12.500000\t12.500000\train\n")


def _recording(admin: TestClient) -> tuple[str, str, Any]:
    """A machine whose sensor holds 15 s: dog, rain, rain clips back to back."""
    machine_id, sensor_id = make_sensor(admin)
    t0 = whole_seconds_ago(900)
    samples = np.concatenate([load_16k(esc10_clips("dog_bark")[0]),
                              load_16k(esc10_clips("rain")[0]),
                              load_16k(esc10_clips("rain")[1])])
    upload(admin, sensor_id, wav(samples), t0)
    return machine_id, sensor_id, t0


def _post(admin: TestClient, machine_id: str, sensor_id: str, start: Any, text: str | bytes,
          content_type: str = "text/plain") -> Any:
    return admin.post(f"/v1/machines/{machine_id}/labels.txt",
                      content=text.encode() if isinstance(text, str) else text,
                      params={"sensor_id": sensor_id, "start": start.isoformat()},
                      headers={"content-type": content_type})


def test_import_then_export_round_trip(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, sensor_id, t0 = _recording(admin)
    created = _post(admin, machine_id, sensor_id, t0, TRACK)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["created"] == 3 and body["sensor_id"] == sensor_id
    spans = [(i["label"], datetime.fromisoformat(i["start"]),
              datetime.fromisoformat(i["end"])) for i in body["items"]]
    assert spans[0] == ("dog_bark", t0, t0 + timedelta(seconds=5))
    # The point label covers the one 1 s window around it.
    assert spans[2] == ("rain", t0 + timedelta(seconds=12), t0 + timedelta(seconds=13))
    listed = admin.get(f"/v1/machines/{machine_id}/labels").json()["items"]
    assert [i["label"] for i in listed] == ["dog_bark", "rain", "rain"]

    exported = admin.get(f"/v1/machines/{machine_id}/labels.txt",
                         params={"start": t0.isoformat(),
                                 "end": (t0 + timedelta(seconds=15)).isoformat()})
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/plain")
    assert exported.text.splitlines()[0] == "0.000000\t5.000000\tdog_bark"
    assert [(x.start_s, x.end_s, x.label) for x in parse(exported.text)] == [
        (0.0, 5.0, "dog_bark"), (5.0, 10.0, "rain"), (12.0, 13.0, "rain")]
    # Shifted origin and a cut range: times are seconds from ?start=.
    later = admin.get(f"/v1/machines/{machine_id}/labels.txt",
                      params={"start": (t0 + timedelta(seconds=4)).isoformat(),
                              "end": (t0 + timedelta(seconds=8)).isoformat()})
    assert [(x.start_s, x.end_s, x.label) for x in parse(later.text)] == [
        (0.0, 1.0, "dog_bark"), (1.0, 4.0, "rain")]
    assert count(conn, LABELS) == 3


def test_bad_tracks_store_nothing(admin: TestClient, conn: psycopg.Connection) -> None:
    machine_id, sensor_id, t0 = _recording(admin)
    good = "0.000000\t5.000000\tdog_bark\n"
    cases = [
        (good + "5.000000\t4.000000\train\n", 422, "line 2"),
        (good + "5.0\t10.0\tdog bark\n", 422, "line 2"),
        (good + "5.0\tten\train\n", 422, "line 2: end 'ten'"),
        (good + "\n4.0\t6.0\train\n", 422, "line 3 ('rain') overlaps line 1"),
        (good + "7.0\t7.0\train\n7.2\t9.0\tdog_bark\n", 422, "line 3"),
        (good + "300.0\t310.0\train\n", 422, "line 2 ('rain'): sensor"),
        ("", 422, "no labels"),
    ]
    for text, status, says in cases:
        problem(_post(admin, machine_id, sensor_id, t0, text), status, says)
    problem(_post(admin, machine_id, sensor_id, t0, b"0\t1\tx\xff\n"), 422, "not UTF-8")
    problem(_post(admin, machine_id, sensor_id, t0, good, "application/json"), 415,
            "text/plain")
    problem(_post(admin, machine_id, str(uuid.uuid4()), t0, good), 404, "sensor")
    other_machine, other_sensor = make_sensor(admin, name="other")
    problem(_post(admin, machine_id, other_sensor, t0, good), 422, other_machine)
    problem(_post(admin, str(uuid.uuid4()), sensor_id, t0, good), 404, "machine")
    assert count(conn, LABELS) == 0
    # A stored label of another class in the way: 409 naming the line, still nothing new.
    assert admin.post(f"/v1/machines/{machine_id}/labels", json={
        "start": (t0 + timedelta(seconds=6)).isoformat(),
        "end": (t0 + timedelta(seconds=7)).isoformat(), "label": "rain"}).status_code == 201
    problem(_post(admin, machine_id, sensor_id, t0, good + "5.5\t6.5\tdog_bark\n"), 409,
            "line 2")
    assert count(conn, LABELS) == 1
    problem(admin.get(f"/v1/machines/{machine_id}/labels.txt",
                      params={"start": t0.isoformat(), "end": t0.isoformat()}), 422,
            "end must be after start")


def test_events_export_from_a_classifier_trained_on_a_track(
        admin: TestClient, settings: Settings, pool: ConnectionPool) -> None:
    machine_id, sensor_id = make_sensor(admin, name="yard")
    t0 = whole_seconds_ago(3600)
    clips = [(c, i) for i in range(3) for c in ("chainsaw", "rooster")]
    samples = np.concatenate([load_16k(esc10_clips(c)[i]) for c, i in clips])
    upload(admin, sensor_id, wav(samples), t0)
    track = "".join(f"{5 * k:.6f}\t{5 * k + 5:.6f}\t{c}\n" for k, (c, _) in enumerate(clips))
    assert _post(admin, machine_id, sensor_id, t0, track).status_code == 201
    assert admin.put(f"/v1/machines/{machine_id}/classifier",
                     json={"algorithm": "logreg"}).status_code == 200
    assert train(admin, settings, pool, machine_id)["state"] == "succeeded"
    held_out = np.concatenate([load_16k(esc10_clips("rooster")[4]),
                               load_16k(esc10_clips("chainsaw")[4])])
    start = t0 + timedelta(seconds=120)
    upload(admin, sensor_id, wav(held_out), start)
    score_all(pool)
    exported = admin.get(f"/v1/machines/{machine_id}/labels.txt", params={
        "start": start.isoformat(), "end": (start + timedelta(seconds=10)).isoformat(),
        "source": "events", "sensor_id": sensor_id})
    assert exported.status_code == 200, exported.text
    events = parse(exported.text)
    assert {e.label for e in events} <= {"chainsaw", "rooster"}
    chainsaw = [e for e in events if e.label == "chainsaw"]
    # The chainsaw clip is the second 5 s of the recording.
    assert chainsaw and min(e.start_s for e in chainsaw) >= 3.0
    assert all(0.0 <= e.start_s <= e.end_s <= 10.0 for e in events)
