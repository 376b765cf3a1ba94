"""The part every Earshot MQTT consumer shares (the embeddings bridge, the audio bridge):
a persistent MQTT v5 session that subscribes on every connect and acknowledges messages by
hand, only once they are stored.

``ack`` only appends to paho's outgoing deque and wakes its loop, so a worker thread may
call it. Acks of messages received on an earlier connection are dropped: their packet ids
mean nothing on the new one, and the broker redelivers those messages instead.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import FrameType

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from psycopg_pool import ConnectionPool

from ingest.mqtt import BrokerAddress, connect_async, persistent_client


def message_topic(message: mqtt.MQTTMessage) -> str:
    """The message's topic, or the repr of its raw bytes when they are not UTF-8: such a
    message is still dead-lettered and acknowledged, never stuck."""
    try:
        return message.topic
    except UnicodeDecodeError:
        return repr(message._topic)


class AckingSubscriber:
    """Subclasses set ``self._client.on_message`` and store what arrives; ``_acks`` tells
    the client which stored messages (generation, mid, qos) to acknowledge."""

    def __init__(self, client_id: str, broker: BrokerAddress, subscription: str,
                 log: logging.Logger, receive_maximum: int) -> None:
        self._broker, self._filter, self._log = broker, subscription, log
        self._receive_maximum = receive_maximum
        self._stopping = threading.Event()
        self._ack_lock = threading.Lock()
        self._generation = 0
        self.subscribed = False
        self._client = persistent_client(client_id, broker, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe

    def _before_subscribe(self, client: mqtt.Client, session_present: bool) -> None:
        """Hook: e.g. drop an older form of the subscription from a resumed session."""

    def _on_connect(self, client: mqtt.Client, _userdata: object, flags: mqtt.ConnectFlags,
                    reason: mqtt.ReasonCode, _props: Properties | None) -> None:
        if reason.is_failure:
            self._log.error("MQTT broker refused the connection: %s", reason)
            return
        with self._ack_lock:
            self._generation += 1
        self._before_subscribe(client, flags.session_present)
        client.subscribe(self._filter, qos=1)
        self._log.info("connected to MQTT broker %s:%d (session present: %s)",
                       self._broker.host, self._broker.port, flags.session_present)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: object, _mid: int,
                      reasons: list[mqtt.ReasonCode], _props: Properties | None) -> None:
        # Until the first subscription exists the broker routes nothing to this session:
        # operators (and tests) wait for this line before sensors publish.
        if any(reason.is_failure for reason in reasons):
            self._log.error("MQTT broker refused the subscription to %s: %s", self._filter,
                            ", ".join(map(str, reasons)))
        else:
            self.subscribed = True
            self._log.info("subscribed to %s", self._filter)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: object,
                       _flags: mqtt.DisconnectFlags, reason: mqtt.ReasonCode,
                       _props: Properties | None) -> None:
        with self._ack_lock:
            self._generation += 1
        if not self._stopping.is_set():
            self._log.warning("MQTT connection lost (%s); reconnecting", reason)

    def _acks(self, stored: Iterable[tuple[int, int, int]]) -> None:
        """Acknowledge stored messages, given as (generation, mid, qos)."""
        with self._ack_lock:
            for generation, mid, qos in stored:
                if generation == self._generation and qos > 0:
                    self._client.ack(mid, qos)

    @contextmanager
    def _connected(self) -> Iterator[None]:
        """Connect (retrying in the background) for the duration of the block. Receive
        Maximum caps unacknowledged deliveries, which bounds the consumer's queue."""
        connect_async(self._client, self._broker, receive_maximum=self._receive_maximum)
        self._client.loop_start()
        try:
            yield
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    def run(self) -> None:
        """Store what arrives until ``stop()`` (the subclass's worker loop)."""
        raise NotImplementedError

    def stop(self) -> None:
        self._stopping.set()

    def serve(self, pool: ConnectionPool) -> None:
        """A process's main loop: SIGTERM/SIGINT stop it; the pool opens without waiting
        (the consumer starts while the database is down: messages wait unacknowledged)
        and is closed at the end."""

        def _on_signal(_signum: int, _frame: FrameType | None) -> None:
            self.stop()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        pool.open(wait=False)
        try:
            self.run()
        finally:
            pool.close()
