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
from collections.abc import Callable
from typing import TypeVar

import paho.mqtt.client as mqtt
from psycopg_pool import ConnectionPool

from ingest.mqtt import parse_mqtt_url, shared_filter
from ingest.mqtt_store import DimCache, Inbound, TopicPattern, Validator, store_group
from ingest.mqtt_subscriber import AckingSubscriber, message_topic
from service import logs
from service.db import make_pool
from service.settings import Settings, get_settings

log = logging.getLogger("earshot.bridge")
B = TypeVar("B")

RECEIVE_MAXIMUM = 256
QUEUE_SIZE = 2 * RECEIVE_MAXIMUM
GROUP_MAX = 128
BACKOFF_INITIAL_S = 0.25
BACKOFF_MAX_S = 15.0


class Bridge(AckingSubscriber):
    """The MQTT client (paho's network thread) plus the storing worker (``run``)."""

    def __init__(self, settings: Settings, pool: ConnectionPool) -> None:
        self._settings, self._pool = settings, pool
        self._topics = TopicPattern(settings.mqtt_topic)
        subscription = shared_filter(settings.mqtt_topic, settings.mqtt_share_group)
        # The other form of the subscription, dropped from a resumed session so an upgrade
        # (or a group change) never leaves the session subscribed twice.
        self._stale_filter = (settings.mqtt_topic if subscription != settings.mqtt_topic
                              else None)
        self._validator = Validator(self._topics, settings.batch_limits(), settings.max_body_bytes)
        self._dims = DimCache()
        self._queue: queue.Queue[Inbound] = queue.Queue(QUEUE_SIZE)
        self.stored_windows = self.dead_letters = 0
        super().__init__(settings.mqtt_client_id, parse_mqtt_url(settings.mqtt_url),
                         subscription, log, RECEIVE_MAXIMUM)
        self._client.on_message = self._on_message

    def _before_subscribe(self, client: mqtt.Client, session_present: bool) -> None:
        if self._stale_filter is not None and session_present:
            client.unsubscribe(self._stale_filter)

    def _on_message(self, _client: mqtt.Client, _userdata: object,
                    message: mqtt.MQTTMessage) -> None:
        topic = message_topic(message)
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

    def run(self) -> None:
        """Connect (retrying in the background) and store until ``stop()``."""
        with self._connected():
            while not self._stopping.is_set():
                group = self._next_group()
                if group and self._commit(group):
                    self._acks((m.generation, m.mid, m.qos) for m in group)


def open_bridge(command: str, build: Callable[[Settings, ConnectionPool], B]
                ) -> tuple[Settings, ConnectionPool, B]:
    """The settings, a small pool and the bridge `build` makes, for `earshot <command>`;
    a bad setting (URL, topic) exits with what to fix."""
    settings = get_settings()
    logs.configure(settings.log_level)
    try:
        pool = make_pool(settings, max_size=2, autocommit=True)
        return settings, pool, build(settings, pool)
    except ValueError as exc:
        raise SystemExit(f"earshot {command}: {exc}") from exc


def main() -> None:
    settings, pool, bridge = open_bridge("bridge", Bridge)
    log.info("bridging %s from %s as client %s", settings.mqtt_topic,
             parse_mqtt_url(settings.mqtt_url), settings.mqtt_client_id)
    bridge.serve(pool)
    log.info("stopped: %d windows stored, %d messages dead-lettered", bridge.stored_windows,
             bridge.dead_letters)


if __name__ == "__main__":
    main()
