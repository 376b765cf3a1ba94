"""`earshot audio-bridge`: audio chunks from MQTT, stored exactly like an HTTP upload.

A sensor publishes one WAV, FLAC or Ogg file per message, QoS 1, to
``earshot/sensors/<sensor id>/audio`` (``EARSHOT_MQTT_AUDIO_TOPIC``), with the RFC 3339
time of its first sample in the MQTT v5 user property ``start``. Each message goes through
``service.audio_ingest.prepare`` and ``commit``, the code path of
``POST /v1/sensors/{id}/audio``: its windows (built-in kinds) and its audio (under the
sensor's policy) in one transaction, idempotent per (sensor, start) — a redelivered message
stores nothing twice.

Why here and not in ``ingest/`` beside the embeddings bridge: storing audio means the
sensor row lock, the audio policy, baselines and labels, all service queries, and
``ingest`` never imports ``service``. So this bridge lives in the service package and takes
from ``ingest`` only the MQTT plumbing (broker URL, persistent session, topic pattern) and
the dead-letter insert. It is its own process and MQTT session (client id
``<EARSHOT_MQTT_CLIENT_ID>-audio``), so audio never queues behind (or ahead of) windows.

Acknowledged after commit (manual PUBACK). A message that can never be stored (topic that
is not a sensor id, unknown sensor, missing or bad ``start``, unreadable audio, too large,
windows disagreeing with the audio) is written to ``ingest_errors`` and acknowledged. While
the database is down nothing is acknowledged: the message is retried with backoff.
"""

from __future__ import annotations

import logging
import queue
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from psycopg_pool import ConnectionPool
from pydantic import AwareDatetime, TypeAdapter, ValidationError

from ingest.errors import IngestError
from ingest.mqtt import START_PROPERTY, parse_mqtt_url, shared_filter
from ingest.mqtt_store import InvalidMessage, TopicPattern
from ingest.mqtt_subscriber import AckingSubscriber, message_topic
from ingest.store import record_ingest_error
from service import audio_ingest
from service.audio_ingest import AudioUpload
from service.errors import NotFoundError, UnprocessableError
from service.mqtt_bridge import open_bridge
from service.queries import sensors as sensor_queries
from service.queries.sensors import AudioPolicy, IngestTarget
from service.settings import Settings

log = logging.getLogger("earshot.audio_bridge")

SOURCE = "mqtt-audio"
# Each unacknowledged message may be up to EARSHOT_MAX_BODY_BYTES: a small Receive Maximum
# bounds the bridge's memory (and audio is seconds of CPU per message anyway).
RECEIVE_MAXIMUM = 4
BACKOFF_INITIAL_S = 0.25
BACKOFF_MAX_S = 15.0
EXCERPT_BYTES = 32
_START = TypeAdapter(AwareDatetime)
# Permanent: the same message would fail the same way again, so it is dead-lettered.
_REFUSALS = (InvalidMessage, IngestError, NotFoundError, UnprocessableError)


def audio_client_id(bridge_client_id: str) -> str:
    return f"{bridge_client_id}-audio"


@dataclass(frozen=True, eq=False)
class AudioMessage:
    """One received PUBLISH; ``generation`` names the connection it arrived on."""

    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    start: str | None  # the `start` user property, as sent


def start_property(properties: Properties | None) -> str | None:
    pairs = getattr(properties, "UserProperty", None) or []
    return next((value for key, value in pairs if key == START_PROPERTY), None)


def parse_start(value: str | None) -> datetime:
    if value is None:
        raise InvalidMessage(f"the MQTT v5 user property {START_PROPERTY!r} (RFC 3339 time of "
                             "the first sample) is missing")
    try:
        return _START.validate_python(value)
    except ValidationError:
        raise InvalidMessage(f"user property {START_PROPERTY}={value[:64]!r} is not an RFC "
                             "3339 time with an offset") from None


class AudioBridge(AckingSubscriber):
    """The MQTT client (paho's network thread) plus the storing worker (``run``)."""

    def __init__(self, settings: Settings, pool: ConnectionPool) -> None:
        self._settings, self._pool = settings, pool
        self._topics = TopicPattern(settings.mqtt_audio_topic)
        self._queue: queue.Queue[AudioMessage] = queue.Queue(2 * RECEIVE_MAXIMUM)
        self.stored_chunks = self.dead_letters = 0
        super().__init__(audio_client_id(settings.mqtt_client_id),
                         parse_mqtt_url(settings.mqtt_url),
                         shared_filter(settings.mqtt_audio_topic, settings.mqtt_share_group),
                         log, RECEIVE_MAXIMUM)
        self._client.on_message = self._on_message

    def _on_message(self, _client: mqtt.Client, _userdata: object,
                    message: mqtt.MQTTMessage) -> None:
        topic = message_topic(message)
        self._queue.put(AudioMessage(self._generation, message.mid, message.qos, topic,
                                     bytes(message.payload), start_property(message.properties)))

    def _store(self, msg: AudioMessage) -> None:
        """Store the message or dead-letter it; database failures propagate (retry)."""
        sensor_id: UUID | None = None  # set once the topic names an existing sensor
        try:
            target, policy = self._target(self._topics.sensor_id(msg.topic))
            sensor_id = target.id
            stored = self._store_audio(target, policy, msg)
        except _REFUSALS as exc:
            excerpt = f"{len(msg.payload)} bytes: {msg.payload[:EXCERPT_BYTES].hex()}"
            with self._pool.connection() as conn:
                record_ingest_error(conn, sensor_id, msg.topic, SOURCE, str(exc), excerpt)
            self.dead_letters += 1
            log.info("dead-lettered audio on %s: %s", msg.topic, exc)
            return
        self.stored_chunks += stored

    def _target(self, sensor_id: UUID) -> tuple[IngestTarget, AudioPolicy]:
        with self._pool.connection() as conn:
            target = sensor_queries.ingest_target(conn, sensor_id)
            policy = sensor_queries.audio_policy(conn, sensor_id)
        if target is None or policy is None:
            raise InvalidMessage(f"sensor {sensor_id} does not exist")
        return target, policy

    def _store_audio(self, target: IngestTarget, policy: AudioPolicy,
                     msg: AudioMessage) -> int:
        if len(msg.payload) > self._settings.max_body_bytes:
            raise InvalidMessage(f"the audio is {len(msg.payload)} bytes; at most "
                                 f"{self._settings.max_body_bytes} (EARSHOT_MAX_BODY_BYTES)")
        upload = AudioUpload(start=parse_start(msg.start), label=None, baseline=False)
        prepared = audio_ingest.prepare(msg.payload, target, policy, self._settings,
                                        upload.start, self._pool)
        stored = audio_ingest.commit(self._pool, target, policy, prepared, upload)
        if stored.audio.duplicate_chunks and not stored.audio.chunks:
            log.info("audio on %s at %s already held (a redelivery): nothing stored twice",
                     msg.topic, upload.start.isoformat())
        return stored.audio.chunks

    def _process(self, msg: AudioMessage) -> bool:
        """Store (or dead-letter) with backoff until it commits; False if stopped first."""
        delay = BACKOFF_INITIAL_S
        while not self._stopping.is_set():
            try:
                self._store(msg)
                return True
            except Exception as exc:  # outage or bug alike: never ack what is not stored
                log.warning("storing audio from %s failed (%s); retrying in %.2f s", msg.topic,
                            str(exc).strip().splitlines()[0] if str(exc) else
                            type(exc).__name__, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
        return False

    def run(self) -> None:
        """Connect (retrying in the background) and store until ``stop()``."""
        with self._connected():
            while not self._stopping.is_set():
                try:
                    msg = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                if self._process(msg):
                    self._acks([(msg.generation, msg.mid, msg.qos)])


def main() -> None:
    settings, pool, bridge = open_bridge("audio-bridge", AudioBridge)
    log.info("bridging audio %s from %s", settings.mqtt_audio_topic,
             parse_mqtt_url(settings.mqtt_url))
    bridge.serve(pool)
    log.info("stopped: %d audio chunks stored, %d messages dead-lettered",
             bridge.stored_chunks, bridge.dead_letters)
