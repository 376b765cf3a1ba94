"""The `cnn` classifier's transfer options through the API on real ESC-10 fold-1 audio:
`transfer: "linear"` (logistic regression on the fleet embedding) and `"fine_tune"` (the
CNN from its weights) train and predict; without a trained fleet embedding, or with a
network that cannot take its weights, PUT /classifier answers a 422 naming what is missing."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from service.fleet import train as fleet_train
from service.settings import Settings
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
from tests.service.fleet.helpers import QUICK

CLASSES = ("chainsaw", "rooster")
QUICK_CNN = {"max_epochs": 3, "patience": 2, "max_train_seconds": 600.0}
PREDICTIONS = "SELECT count(*) FROM predictions WHERE machine_id = %s AND model_version = %s"


def _put(admin: TestClient, machine: str, **params: object) -> object:
    return admin.put(f"/v1/machines/{machine}/classifier",
                     json={"algorithm": "cnn", "params": {**QUICK_CNN, **params}})


def test_transfer_options_train_and_predict_through_the_api(
        admin: TestClient, settings: Settings, pool: ConnectionPool,
        conn: psycopg.Connection) -> None:
    machine, sensor, after = labelled_machine(admin, CLASSES, 4, name="yard")
    problem(_put(admin, machine, transfer="linear"), 422, "fleet embedding",
            "none has been trained", "POST /v1/fleet/embedding/train")
    assert admin.post("/v1/fleet/embedding/train", json=QUICK).status_code == 202
    ran = fleet_train.run_one(settings, pool)
    assert ran is not None and ran[1] == 1
    # One machine, one sensor, no conditions: the recordings are the auxiliary classes.
    fleet = admin.get("/v1/fleet/embedding/1").json()
    assert fleet["metrics"]["aux_task"] == "recording" and fleet["n_recordings"] == 8
    problem(_put(admin, machine, transfer="fine_tune", width=8), 422, "set width 16")

    versions = {}
    for mode in ("linear", "fine_tune"):
        put = _put(admin, machine, transfer=mode)
        assert put.status_code == 200, put.text
        assert put.json()["params"]["transfer"] == mode
        job = train(admin, settings, pool, machine)
        assert job["state"] == "succeeded", job["error"]
        model = admin.get(f"/v1/machines/{machine}/models/{job['model_version']}",
                          params={"target": "classifier"}).json()
        assert model["metrics"]["transfer"] == {"mode": mode, "fleet_embedding_version": 1}
        assert 0.0 <= model["metrics"]["accuracy"] <= 1.0
        versions[mode] = job["model_version"]
        print(f"transfer {mode}: cv accuracy {model['metrics']['accuracy']:.3f}")

    # The active classifier (fine_tune) predicts new uploads from their stored audio.
    score_all(pool)
    held_out = np.concatenate([load_16k(esc10_clips("rooster")[5]),
                               load_16k(esc10_clips("chainsaw")[5])])
    start = after + timedelta(seconds=60)
    stored = upload(admin, sensor, wav(held_out), start)
    before = count(conn, PREDICTIONS, machine, versions["fine_tune"])
    score_all(pool)
    assert count(conn, PREDICTIONS, machine, versions["fine_tune"]) - before == \
        stored["windows"] == 10

