"""The `cnn` classifier end to end through the API on real ESC-10 audio: labelled clips
uploaded (their audio kept by the audio store), `PUT /classifier {"algorithm": "cnn"}`,
a training job that reads the labelled windows' audio, and predictions and events from
the scorer on new uploads. A machine whose labels have no stored audio (a sensor that
sends embeddings only) is told what is missing with a 422, at PUT and at POST /train."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from ingest.features import embed
from service.settings import Settings
from service.training import runner
from tests.service.classification.helpers import (
    count,
    esc10_clips,
    labelled_machine,
    load_16k,
    make_sensor,
    problem,
    score_all,
    train,
    upload,
    wav,
    whole_seconds_ago,
)

CLASSES = ("chainsaw", "rooster")
# Small and quick, yet enough to tell a chainsaw from a rooster.
PARAMS = {"max_epochs": 12, "patience": 4, "width": 8, "max_train_seconds": 600.0}
PREDICTIONS = "SELECT count(*) FROM predictions WHERE machine_id = %s"


def test_cnn_trains_on_stored_audio_and_predicts(admin: TestClient, settings: Settings,
                                                 pool: ConnectionPool,
                                                 conn: psycopg.Connection) -> None:
    machine_id, sensor_id, after = labelled_machine(admin, CLASSES, 4, name="yard")
    put = admin.put(f"/v1/machines/{machine_id}/classifier",
                    json={"algorithm": "cnn", "params": PARAMS})
    assert put.status_code == 200, put.text
    assert put.json()["params"]["width"] == 8
    job = train(admin, settings, pool, machine_id)
    assert job["state"] == "succeeded", job["error"]
    model = admin.get(f"/v1/machines/{machine_id}/models/{job['model_version']}",
                      params={"target": "classifier"}).json()
    assert model["algorithm"] == "cnn"
    metrics = model["metrics"]
    assert metrics["classes"] == list(CLASSES) and metrics["cv"]["folds"] >= 2
    assert metrics["audio"]["clip_samples"] == 16000
    assert metrics["audio"]["windows_with_audio"] == model["n_windows"] >= 30
    assert 0.0 <= metrics["accuracy"] <= 1.0
    # The fold ensemble (default): the job's cv fold networks and its final one predict.
    assert model["params"]["fold_ensemble"] is True
    assert metrics["predicting_models"] == metrics["cv"]["folds"] + 1

    score_all(pool)  # the training clips' windows, now with the active classifier
    held_out = np.concatenate([load_16k(esc10_clips("rooster")[5]),
                               load_16k(esc10_clips("chainsaw")[5])])
    start = after + timedelta(seconds=60)
    result = upload(admin, sensor_id, wav(held_out), start)
    before = count(conn, PREDICTIONS, machine_id)
    score_all(pool)
    assert count(conn, PREDICTIONS, machine_id) - before == result["windows"] == 10
    page = admin.get(f"/v1/machines/{machine_id}/predictions", params={
        "start": start.isoformat(), "end": (start + timedelta(seconds=10)).isoformat()})
    items = page.json()["items"]
    assert len(items) == 10 and {i["model_version"] for i in items} == {1}
    chainsaw = [i for i in items if i["t"] >= (start + timedelta(seconds=5)).isoformat()]
    assert all(abs(sum(i["probabilities"].values()) - 1.0) < 1e-3 for i in items)
    assert sum(i["label"] == "chainsaw" for i in chainsaw) >= 3, chainsaw
    events = admin.get(f"/v1/machines/{machine_id}/events", params={
        "start": start.isoformat(), "end": (start + timedelta(seconds=10)).isoformat()})
    assert events.status_code == 200
    assert {e["label"] for e in events.json()["items"]} <= set(CLASSES)


def test_fold_ensemble_switched_off_predicts_with_the_final_model(
        admin: TestClient, settings: Settings, pool: ConnectionPool,
        conn: psycopg.Connection) -> None:
    machine_id, sensor_id, after = labelled_machine(admin, CLASSES, 3, name="shed")
    put = admin.put(f"/v1/machines/{machine_id}/classifier", json={
        "algorithm": "cnn", "params": {**PARAMS, "fold_ensemble": False}})
    assert put.status_code == 200 and put.json()["params"]["fold_ensemble"] is False
    job = train(admin, settings, pool, machine_id)
    assert job["state"] == "succeeded", job["error"]
    model = admin.get(f"/v1/machines/{machine_id}/models/{job['model_version']}",
                      params={"target": "classifier"}).json()
    assert model["metrics"]["predicting_models"] == 1 and model["metrics"]["cv"]["folds"] >= 2
    score_all(pool)
    before = count(conn, PREDICTIONS, machine_id)
    start = after + timedelta(seconds=60)
    result = upload(admin, sensor_id, wav(load_16k(esc10_clips("rooster")[5])), start)
    score_all(pool)
    assert count(conn, PREDICTIONS, machine_id) - before == result["windows"] == 5
    problem(admin.put(f"/v1/machines/{machine_id}/classifier", json={
        "algorithm": "cnn", "params": {"fold_ensemble": "maybe"}}), 422, "fold_ensemble")


def test_labels_without_stored_audio_are_refused(admin: TestClient, settings: Settings,
                                                 pool: ConnectionPool) -> None:
    """A sensor sending logmel-v1 vectors it computed itself: windows, labels, no audio."""
    machine_id, sensor_id = make_sensor(admin, name="vectors")
    url = f"/v1/machines/{machine_id}/classifier"
    # No labels yet: nothing is missing, and a job can be queued.
    assert admin.put(url, json={"algorithm": "cnn", "params": PARAMS}).status_code == 200
    queued = admin.post(f"/v1/machines/{machine_id}/train", json={"target": "classifier"})
    assert queued.status_code == 202, queued.text
    t0 = whole_seconds_ago(3600)
    for k, label in enumerate(CLASSES):
        vectors = embed(load_16k(esc10_clips(label)[0]), 16000)
        at = t0 + timedelta(seconds=10 * k)
        body = {"windows": [{"t": (at + timedelta(seconds=i)).isoformat(),
                             "v": v.tolist()} for i, v in enumerate(vectors)]}
        sent = admin.post(f"/v1/sensors/{sensor_id}/embeddings", json=body)
        assert sent.status_code == 200, sent.text
        assert admin.post(f"/v1/machines/{machine_id}/labels", json={
            "start": at.isoformat(), "end": (at + timedelta(seconds=5)).isoformat(),
            "label": label}).status_code == 201
    # The queued job meets labels without audio: it fails saying so.
    outcome = runner.run_one(settings, pool)
    assert outcome is not None and str(outcome.job_id) == queued.json()["job_id"]
    job = admin.get(f"/v1/jobs/{outcome.job_id}").json()
    assert job["state"] == "failed" and "no stored audio" in job["error"], job["error"]
    problem(admin.post(f"/v1/machines/{machine_id}/train", json={"target": "classifier"}),
            422, "no stored audio", "2 of its 2 label range(s)", "'chainsaw'")
    problem(admin.put(url, json={"algorithm": "cnn"}), 422, "no stored audio", "logreg")
    problem(admin.put(url, json={"algorithm": "cnn", "params": {"width": 2}}), 422,
            "width")
    # The statistical classifiers work on the same windows.
    assert admin.put(url, json={"algorithm": "logreg"}).status_code == 200
    assert train(admin, settings, pool, machine_id)["state"] == "succeeded"
