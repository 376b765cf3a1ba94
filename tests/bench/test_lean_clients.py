"""The ingest benchmark's lean load generators against real parts: `bench.rawload` posts
to the real API (uvicorn) and counts exactly what was acknowledged; `bench.mqtt_rawpub`
publishes QoS 1 packets a real Mosquitto acknowledges and a paho subscriber receives
intact."""

from __future__ import annotations

import time
from uuid import UUID

import httpx
import numpy as np
import paho.mqtt.client as mqtt
import psycopg

from bench import loadgen, rawload
from bench.mqtt_rawpub import Publisher
from ingest.mqtt import sensor_topic
from service.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.live import Mosquitto, wait_until

US = 1_000_000


def make_sensor(url: str) -> tuple[str, str]:
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    machine = http.post("/v1/machines", json={"name": "m", "kind": "pump"}).json()["id"]
    body = http.post(f"/v1/machines/{machine}/sensors",
                     json={"name": "s", "embedding": {"kind": "logmel-v1"}}).json()
    return body["id"], body["ingest_token"]


FIRST_US = int((time.time() - 86400) * US)


def job(url: str, sensor: tuple[str, str], requests: int,
        first_us: int = FIRST_US) -> loadgen.Job:
    vectors = np.random.default_rng(0).normal(size=(20, 128)).astype(np.float32)
    return loadgen.Job(url, "binary", 5, [sensor], vectors, first_us, duration_s=30.0,
                       concurrency=2, max_requests=requests)


def test_the_lean_http_client_counts_what_the_api_stored(live_api: str,
                                                          settings: Settings) -> None:
    sensor = make_sensor(live_api)
    result = rawload.run_job(job(live_api, sensor, requests=24))
    assert (result.requests, result.windows, result.errors) == (24, 120, 0)
    assert len(result.latencies_s) == 24
    with psycopg.connect(settings.resolved_database_url()) as conn:
        stored = conn.execute("SELECT count(*) FROM embeddings WHERE sensor_id = %s",
                              (UUID(sensor[0]),)).fetchone()
    assert stored == (120,)
    # The same windows again are duplicates: answered 200 but not all accepted -> errors.
    again = rawload.run_job(job(live_api, sensor, requests=3))
    assert again.errors == 3 and again.windows == 0
    refused = rawload.run_job(job(live_api, (sensor[0], "wrong-token"), requests=2))
    assert refused.errors == 2 and refused.error_samples[0].startswith("401")


def test_the_lean_mqtt_publisher_is_acknowledged_and_received_intact(
        mosquitto: Mosquitto) -> None:
    topic = sensor_topic(UUID(int=7))
    received: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    sub.on_message = lambda _c, _u, msg: received.append(bytes(msg.payload))
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    try:
        time.sleep(0.5)  # the subscription is in place before the first publish
        payloads = [f'{{"n": {i}, "pad": "{"x" * (i * 37)}"}}'.encode() for i in range(300)]
        publisher = Publisher(mosquitto.port, "lean-test", inflight=50)
        try:
            sent = publisher.publish_all((topic.encode(), p) for p in payloads)
        finally:
            publisher.close()
        assert sent == publisher.acked == 300
        wait_until(lambda: len(received) == 300, 30.0, "the subscriber to get every message")
        assert received == payloads  # QoS 1 from one publisher arrives in order
    finally:
        sub.loop_stop()
        sub.disconnect()
