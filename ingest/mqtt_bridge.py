"""`earshot bridge`: embeddings from MQTT into TimescaleDB, acknowledged only once stored.

Sensors publish the JSON body of ``POST /v1/sensors/{id}/embeddings`` with QoS 1 to
``earshot/sensors/<sensor id>/embeddings`` (``EARSHOT_MQTT_TOPIC``). Any number of bridges
share the stream through an MQTT v5 shared subscription (``$share/earshot/...``,
``EARSHOT_MQTT_SHARE_GROUP``). Each keeps a persistent session under its own stable client
id (``EARSHOT_MQTT_CLIENT_ID``) and acknowledges by hand, so:

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
from types import FrameType

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from psycopg_pool import ConnectionPool

from ingest.mqtt import connect_async, parse_mqtt_url, persistent_client, shared_filter
from ingest.mqtt_store import DimCache, Inbound, TopicPattern, Validator, store_group
from service import logs
from service.db import make_pool
from service.settings import Settings, get_settings

log = logging.getLogger("earshot.bridge")

RECEIVE_MAXIMUM = 256
QUEUE_SIZE = 2 * RECEIVE_MAXIMUM
GROUP_MAX = 128
BACKOFF_INITIAL_S = 0.25
BACKOFF_MAX_S = 15.0


class Bridge:
    """The MQTT client (paho's network thread) plus the storing worker (``run``)."""

    def __init__(self, settings: Settings, pool: ConnectionPool) -> None:
        self._settings, self._pool = settings, pool
        self._topics = TopicPattern(settings.mqtt_topic)
        self._broker = parse_mqtt_url(settings.mqtt_url)
        self._filter = shared_filter(settings.mqtt_topic, settings.mqtt_share_group)
        # The other form of the subscription, dropped from a resumed session so an upgrade
        # (or a group change) never leaves the session subscribed twice.
        self._stale_filter = (settings.mqtt_topic if self._filter != settings.mqtt_topic
                              else None)
        self._validator = Validator(self._topics, settings.batch_limits(), settings.max_body_bytes)
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
        if self._stale_filter is not None and flags.session_present:
            client.unsubscribe(self._stale_filter)
        client.subscribe(self._filter, qos=1)
        log.info("connected to MQTT broker %s:%d (session present: %s)", self._broker.host,
                 self._broker.port, flags.session_present)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: object, _mid: int,
                      reasons: list[mqtt.ReasonCode], _props: Properties | None) -> None:
        # Until the first subscription exists the broker routes nothing to this session:
        # operators (and tests) wait for this line before sensors publish.
        if any(reason.is_failure for reason in reasons):
            log.error("MQTT broker refused the subscription to %s: %s", self._filter,
                      ", ".join(map(str, reasons)))
        else:
            self.subscribed = True
            log.info("subscribed to %s", self._filter)

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
    log.info("bridging %s from %s as client %s", settings.mqtt_topic,
             parse_mqtt_url(settings.mqtt_url), settings.mqtt_client_id)
    try:
        bridge.run()
    finally:
        pool.close()
    log.info("stopped: %d windows stored, %d messages dead-lettered", bridge.stored_windows,
             bridge.dead_letters)


if __name__ == "__main__":
    main()
