"""`earshot bridge`: embeddings from MQTT into TimescaleDB, acknowledged only once stored.

Sensors publish the JSON body of ``POST /v1/sensors/{id}/embeddings`` with QoS 1 to
``earshot/sensors/<sensor id>/embeddings`` (``EARSHOT_MQTT_TOPIC``). The bridge keeps a
persistent MQTT v5 session under a fixed client id and acknowledges by hand, so:

* a PUBACK leaves only after the message's rows (or its dead-letter row) are committed; a
  bridge killed at any point gets every unacknowledged message again on reconnect, and
  ``insert_windows`` (idempotent on (sensor, t)) stores nothing twice;
* an invalid message (unknown sensor, bad JSON, wrong dim, NaN, ...) is written to
  ``ingest_errors`` with the reason and an excerpt, then acknowledged: a poison message
  never blocks the stream. A redelivery of it can leave a second dead-letter row;
* while the database is down nothing is acknowledged; the same group is retried with
  backoff until it commits. The broker stops sending after ``RECEIVE_MAXIMUM``
  unacknowledged messages, which bounds the bridge's memory.

paho's network thread only enqueues; one worker thread validates, commits messages in
groups (one transaction per group, fewer fsyncs) and then acknowledges the group. ``ack``
only appends to paho's outgoing deque and wakes its loop, so calling it from the worker
is safe; acks are dropped for messages received on an earlier connection, whose packet
ids mean nothing on the new one (the broker redelivers those messages instead).
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from uuid import UUID

import numpy as np
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.properties import Properties
from psycopg_pool import ConnectionPool

from ingest.codec import JSON_TYPE, Batch, BatchLimits, parse_batch
from ingest.errors import IngestError
from ingest.mqtt import connect_async, parse_mqtt_url, persistent_client
from ingest.store import insert_windows, record_ingest_error, sensor_dim
from service import logs
from service.db import make_pool
from service.settings import Settings, get_settings

log = logging.getLogger("earshot.bridge")

SOURCE = "mqtt"
EXCERPT_CHARS = 200
RECEIVE_MAXIMUM = 256
QUEUE_SIZE = 2 * RECEIVE_MAXIMUM
GROUP_MAX = 128
DIM_TTL_S = 10.0
BACKOFF_INITIAL_S = 0.25
BACKOFF_MAX_S = 15.0


@dataclass(frozen=True)
class Inbound:
    """One received PUBLISH; ``generation`` names the connection it arrived on."""

    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes


class InvalidMessage(Exception):
    def __init__(self, reason: str, sensor_id: UUID | None = None) -> None:
        super().__init__(reason)
        self.reason, self.sensor_id = reason, sensor_id


class TopicPattern:
    """The subscription filter; the level holding ``+`` is the sensor id."""

    def __init__(self, pattern: str) -> None:
        levels = pattern.split("/")
        if levels.count("+") != 1 or "#" in levels:
            raise ValueError(f"MQTT topic {pattern!r} needs exactly one '+' level (the sensor "
                             "id) and no '#', e.g. earshot/sensors/+/embeddings")
        self.pattern, self._levels, self._index = pattern, levels, levels.index("+")

    def sensor_id(self, topic: str) -> UUID:
        levels = topic.split("/")
        if len(levels) != len(self._levels):
            raise InvalidMessage(f"topic {topic!r} does not match {self.pattern!r}")
        try:
            return UUID(levels[self._index])
        except ValueError:
            raise InvalidMessage(f"topic level {levels[self._index]!r} is not a sensor id "
                                 "(UUID)") from None


class DimCache:
    """Sensor dims (None = no such sensor) for a short TTL: one lookup per sensor per TTL
    instead of one per message, and a sensor created a moment ago is found soon."""

    def __init__(self, ttl_s: float = DIM_TTL_S, clock: Callable[[], float] = time.monotonic):
        self._ttl_s, self._clock = ttl_s, clock
        self._entries: dict[UUID, tuple[int | None, float]] = {}

    def lookup(self, conn: psycopg.Connection, sensor_id: UUID) -> int | None:
        now = self._clock()
        hit = self._entries.get(sensor_id)
        if hit is not None and hit[1] > now:
            return hit[0]
        dim = sensor_dim(conn, sensor_id)
        self._entries[sensor_id] = (dim, now + self._ttl_s)
        return dim


def limits_from(settings: Settings) -> BatchLimits:
    return BatchLimits(max_windows=settings.max_batch_windows,
                       max_past_s=settings.max_past_days * 86400.0,
                       max_future_s=settings.max_future_s)


@dataclass(frozen=True)
class Validator:
    topics: TopicPattern
    limits: BatchLimits
    max_bytes: int

    def parse(self, msg: Inbound, dim_of: Callable[[UUID], int | None]) -> tuple[UUID, Batch]:
        sensor_id = self.topics.sensor_id(msg.topic)
        if len(msg.payload) > self.max_bytes:
            raise InvalidMessage(f"payload is {len(msg.payload)} bytes; at most "
                                 f"{self.max_bytes} are accepted", sensor_id)
        dim = dim_of(sensor_id)
        if dim is None:
            raise InvalidMessage(f"unknown sensor {sensor_id}", sensor_id)
        try:
            batch = parse_batch(msg.payload, JSON_TYPE, dim=dim, limits=self.limits,
                                now_us=time.time_ns() // 1000)
        except IngestError as exc:
            raise InvalidMessage(exc.detail, sensor_id) from None
        return sensor_id, batch


def excerpt(payload: bytes) -> str:
    return payload[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]


def store_group(conn: psycopg.Connection, validator: Validator, dims: DimCache,
                group: list[Inbound]) -> tuple[int, int]:
    """Store a group in one transaction: (windows accepted, messages dead-lettered).
    Raises on database trouble, leaving nothing of the group stored."""
    by_sensor: dict[UUID, list[tuple[Inbound, Batch]]] = {}
    accepted = rejected = 0
    with conn.transaction():
        for msg in group:
            try:
                sensor_id, batch = validator.parse(msg, lambda s: dims.lookup(conn, s))
            except InvalidMessage as bad:
                _dead_letter(conn, msg, bad.sensor_id, bad.reason)
                rejected += 1
                continue
            by_sensor.setdefault(sensor_id, []).append((msg, batch))
        for sensor_id, items in by_sensor.items():
            stored, refused = _store_sensor(conn, sensor_id, items)
            accepted, rejected = accepted + stored, rejected + refused
    return accepted, rejected


def _store_sensor(conn: psycopg.Connection, sensor_id: UUID,
                  items: list[tuple[Inbound, Batch]]) -> tuple[int, int]:
    """All of a sensor's messages in the group as one insert (a message costs ~10 round
    trips on its own); should the database refuse that, message by message."""
    times = np.concatenate([batch.times_us for _, batch in items])
    values = np.concatenate([batch.values for _, batch in items])
    try:
        with conn.transaction():  # a savepoint: only this insert is undone if refused
            # ON CONFLICT DO NOTHING also skips a window repeated across messages.
            return insert_windows(conn, sensor_id, times, values).accepted, 0
    except _REFUSALS:
        pass  # find which message it was, below
    results = [_store_one(conn, sensor_id, msg, batch) for msg, batch in items]
    return sum(max(r, 0) for r in results), sum(r < 0 for r in results)


# Not outages (those propagate and the group is retried): retrying could never succeed, so
# the message is parked instead of blocking the stream.
_REFUSALS = (psycopg.DataError, psycopg.IntegrityError, psycopg.ProgrammingError)


def _store_one(conn: psycopg.Connection, sensor_id: UUID, msg: Inbound, batch: Batch) -> int:
    """Windows newly stored, or -1 when the message went to the dead-letter table."""
    try:
        with conn.transaction():
            return insert_windows(conn, sensor_id, batch.times_us, batch.values).accepted
    except _REFUSALS as exc:
        _dead_letter(conn, msg, sensor_id, f"the database refused the batch: {exc}")
        return -1


def _dead_letter(conn: psycopg.Connection, msg: Inbound, sensor_id: UUID | None,
                 reason: str) -> None:
    record_ingest_error(conn, sensor_id, msg.topic, SOURCE, reason, excerpt(msg.payload))


class Bridge:
    """The MQTT client (paho's network thread) plus the storing worker (``run``)."""

    def __init__(self, settings: Settings, pool: ConnectionPool) -> None:
        self._settings, self._pool = settings, pool
        self._topics = TopicPattern(settings.mqtt_topic)
        self._broker = parse_mqtt_url(settings.mqtt_url)
        self._validator = Validator(self._topics, limits_from(settings), settings.max_body_bytes)
        self._dims = DimCache()
        self._queue: queue.Queue[Inbound] = queue.Queue(QUEUE_SIZE)
        self._stopping = threading.Event()
        self._ack_lock = threading.Lock()
        self._generation = 0
        self.stored_windows = self.dead_letters = 0
        self.subscribed = False
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = persistent_client(self._settings.mqtt_client_id, self._broker, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _on_connect(self, client: mqtt.Client, _userdata: object, flags: mqtt.ConnectFlags,
                    reason: mqtt.ReasonCode, _props: Properties | None) -> None:
        if reason.is_failure:
            log.error("MQTT broker refused the connection: %s", reason)
            return
        with self._ack_lock:
            self._generation += 1
        client.subscribe(self._topics.pattern, qos=1)
        log.info("connected to MQTT broker %s:%d (session present: %s)", self._broker.host,
                 self._broker.port, flags.session_present)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: object, _mid: int,
                      reasons: list[mqtt.ReasonCode], _props: Properties | None) -> None:
        # Until the first subscription exists the broker routes nothing to this session:
        # operators (and tests) wait for this line before sensors publish.
        if any(reason.is_failure for reason in reasons):
            log.error("MQTT broker refused the subscription to %s: %s", self._topics.pattern,
                      ", ".join(map(str, reasons)))
        else:
            self.subscribed = True
            log.info("subscribed to %s", self._topics.pattern)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object,
                       _flags: mqtt.DisconnectFlags, reason: mqtt.ReasonCode,
                       _props: Properties | None) -> None:
        with self._ack_lock:
            self._generation += 1
        if not self._stopping.is_set():
            log.warning("MQTT connection lost (%s); reconnecting", reason)

    def _on_message(self, _client: mqtt.Client, _userdata: object,
                    message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = repr(message._topic)  # still dead-lettered and acked, never stuck
        # Blocks only if the broker ignores our Receive Maximum; that is backpressure.
        self._queue.put(Inbound(self._generation, message.mid, message.qos, topic,
                                bytes(message.payload)))

    def _next_group(self) -> list[Inbound]:
        try:
            group = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        while len(group) < GROUP_MAX:
            try:
                group.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return group

    def _commit(self, group: list[Inbound]) -> bool:
        """Store the group, retrying with backoff until it commits or the bridge stops."""
        delay = BACKOFF_INITIAL_S
        while not self._stopping.is_set():
            try:
                with self._pool.connection() as conn:
                    accepted, rejected = store_group(conn, self._validator, self._dims, group)
            except Exception as exc:  # outage or bug alike: never ack what is not stored
                log.warning("storing %d MQTT messages failed (%s); retrying in %.2f s",
                            len(group), str(exc).strip().splitlines()[0] if str(exc) else
                            type(exc).__name__, delay)
                self._stopping.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self.stored_windows += accepted
            self.dead_letters += rejected
            return True
        return False

    def _ack(self, group: list[Inbound]) -> None:
        with self._ack_lock:
            for msg in group:
                if msg.generation == self._generation and msg.qos > 0:
                    self._client.ack(msg.mid, msg.qos)

    def run(self) -> None:
        """Connect (retrying in the background) and store until ``stop()``."""
        # Receive Maximum caps unacknowledged deliveries, so the queue never fills.
        connect_async(self._client, self._broker, receive_maximum=RECEIVE_MAXIMUM)
        self._client.loop_start()
        try:
            while not self._stopping.is_set():
                group = self._next_group()
                if group and self._commit(group):
                    self._ack(group)
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    def stop(self) -> None:
        self._stopping.set()


def main() -> None:
    settings = get_settings()
    logs.configure(settings.log_level)
    try:
        pool = make_pool(settings, max_size=2, autocommit=True)
        bridge = Bridge(settings, pool)
    except ValueError as exc:
        raise SystemExit(f"earshot bridge: {exc}") from exc

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        bridge.stop()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    pool.open(wait=False)  # start even while the database is down; groups wait for it
    log.info("bridging %s from %s", settings.mqtt_topic, parse_mqtt_url(settings.mqtt_url))
    try:
        bridge.run()
    finally:
        pool.close()
    log.info("stopped: %d windows stored, %d messages dead-lettered", bridge.stored_windows,
             bridge.dead_letters)


if __name__ == "__main__":
    main()
