"""`/v1/classifiers`, `/v1/machines/{id}/classifier` and classifier training through the
shared job endpoints on real ESC-10 audio: configuration validation, versions and
activation with `?target=classifier`, cron registration, and training failures that say
what is wrong (no labels, one class, too few windows, labels whose data is gone)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from service.db import make_pool
from service.queries import model_configs
from service.settings import Settings
from service.training import models as training_models
from tests.service.classification.helpers import (
    esc10_clips,
    labelled_machine,
    make_sensor,
    problem,
    train,
    upload,
    whole_seconds_ago,
)


@pytest.fixture
def pool(settings: Settings) -> Iterator[ConnectionPool]:
    training_models.clear_cache()
    with make_pool(settings, max_size=4) as the_pool:
        yield the_pool


def configure(admin: TestClient, machine_id: str, **body: Any) -> Any:
    return admin.put(f"/v1/machines/{machine_id}/classifier",
                     json={"algorithm": "logreg", **body})


def test_catalogue_and_configuration(admin: TestClient, conn: psycopg.Connection) -> None:
    names = {a["name"] for a in admin.get("/v1/classifiers").json()["algorithms"]}
    assert names == {"logreg", "random_forest", "gradient_boosting", "mlp", "cnn"}
    machine_id, _ = make_sensor(admin)
    problem(admin.get(f"/v1/machines/{machine_id}/classifier"), 404, "no classifier")
    saved = configure(admin, machine_id, params={"C": 0.5}, retrain_cron="0 3 * * *")
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["params"] == {"C": 0.5, "max_iter": 1000, "class_weight": "balanced"}
    assert body["target"] == "classifier" and body["next_retrain_at"] is not None
    assert admin.get(f"/v1/machines/{machine_id}/classifier").json() == body
    # The scheduler's cron sync sees the classifier like any model config.
    assert (uuid.UUID(machine_id), "classifier", "0 3 * * *") in \
        model_configs.cron_configs(conn)

    bad = problem(configure(admin, machine_id, algorithm="svm"), 422,
                  "unknown classifier algorithm 'svm'")
    assert bad["title"] == "Invalid classifier configuration" and "logreg" in bad["valid"]
    assert len(problem(configure(admin, machine_id, params={"C": 0, "depth": 2}),
                       422)["errors"]) == 2
    problem(configure(admin, machine_id, retrain_cron="every day"), 422, "crontab")
    problem(configure(admin, str(uuid.uuid4())), 404, "does not exist")
    assert admin.get(f"/v1/machines/{machine_id}/classifier").json() == body


def test_train_version_and_activate(admin: TestClient, settings: Settings,
                                    pool: ConnectionPool) -> None:
    machine_id, _, _ = labelled_machine(admin, ("chainsaw", "rooster"), 3)
    problem(admin.post(f"/v1/machines/{machine_id}/train", json={"target": "classifier"}),
            409, "no classifier configured")
    assert configure(admin, machine_id).status_code == 200
    for version in (1, 2):
        job = train(admin, settings, pool, machine_id)
        assert (job["state"], job["target"], job["model_version"]) == \
            ("succeeded", "classifier", version)
    url = f"/v1/machines/{machine_id}/models"
    items = admin.get(url, params={"target": "classifier"}).json()["items"]
    assert [(m["version"], m["active"]) for m in items] == [(2, True), (1, False)]
    metrics = items[0]["metrics"]
    assert metrics["classes"] == ["chainsaw", "rooster"]
    assert metrics["cv"]["folds"] == 3 and len(metrics["confusion_matrix"]) == 2
    assert set(metrics["per_class"]["rooster"]) == {"precision", "recall", "f1", "support"}
    assert items[0]["threshold"] is None
    assert admin.get(url).json()["items"] == []  # the detector list is separate
    one = admin.post(f"{url}/1/activate", params={"target": "classifier"})
    assert one.status_code == 200 and one.json()["active"]
    assert admin.get(f"{url}/2", params={"target": "classifier"}).json()["active"] is False


def test_training_failures_say_what_is_wrong(admin: TestClient, settings: Settings,
                                             pool: ConnectionPool,
                                             conn: psycopg.Connection) -> None:
    machine_id, sensor_id = make_sensor(admin)
    assert configure(admin, machine_id).status_code == 200
    url = f"/v1/machines/{machine_id}/labels"

    def failure() -> str:
        job = train(admin, settings, pool, machine_id)
        assert job["state"] == "failed" and job["model_version"] is None
        error: str = job["error"]
        return error

    assert "no labelled ranges" in failure()
    at = whole_seconds_ago(3600)
    for path in esc10_clips("rain")[:2]:
        upload(admin, sensor_id, path.read_bytes(), at, "audio/ogg", label="rain")
        at += timedelta(seconds=20)
    assert "only one class ('rain'" in failure()

    upload(admin, sensor_id, esc10_clips("rooster")[0].read_bytes(), at, "audio/ogg")
    short = admin.post(url, json={"start": at.isoformat(),
                                  "end": (at + timedelta(seconds=3)).isoformat(),
                                  "label": "rooster"})
    assert short.status_code == 201
    error = failure()
    assert "too few labelled windows for class(es) 'rooster': 3" in error
    assert "rain: 10" in error  # the counts per class, to act on

    # The rooster's windows are gone (e.g. retention): its label covers no data.
    conn.execute("DELETE FROM embeddings WHERE sensor_id = %s AND t >= %s", (sensor_id, at))
    conn.commit()
    assert "label(s) 'rooster' cover no stored windows" in failure()
    assert admin.get(f"/v1/machines/{machine_id}/models",
                     params={"target": "classifier"}).json()["items"] == []
