"""MQTT pieces shared by the bridge and the sensor client: broker URLs, the topic layout
and clients with a persistent MQTT v5 session."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlparse
from uuid import UUID

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

DEFAULT_TOPIC = "earshot/sensors/+/embeddings"
# One audio file (WAV, FLAC or Ogg) per message; the time of its first sample travels in
# the MQTT v5 user property START_PROPERTY as RFC 3339 (docs/mqtt.md, "Audio").
AUDIO_TOPIC = "earshot/sensors/+/audio"
START_PROPERTY = "start"
SESSION_EXPIRY_S = 7 * 24 * 3600
KEEPALIVE_S = 30


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    def __str__(self) -> str:
        """For logs: never the credentials."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> BrokerAddress:
    """``mqtt://[user[:password]@]host[:port]`` (1883) or ``mqtts://`` (TLS, 8883)."""
    parts = urlparse(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("MQTT URL must look like mqtt://host:1883 or mqtts://host:8883, "
                         f"got {parts.scheme or 'no'} scheme")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        host=parts.hostname, port=parts.port or (8883 if tls else 1883),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None, tls=tls)


def sensor_topic(sensor_id: UUID, pattern: str = DEFAULT_TOPIC) -> str:
    """The topic a sensor publishes to: the pattern with its ``+`` level set to the id."""
    return "/".join(str(sensor_id) if level == "+" else level for level in pattern.split("/"))


def persistent_client(client_id: str, broker: BrokerAddress, *,
                      manual_ack: bool = False) -> mqtt.Client:
    """A paho client (MQTT v5) with credentials/TLS from the URL and bounded reconnect
    backoff. Connect it with :func:`connect_async` so the session survives restarts."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set()
    client.reconnect_delay_set(min_delay=1, max_delay=15)
    return client


def connect_async(client: mqtt.Client, broker: BrokerAddress,
                  receive_maximum: int | None = None) -> None:
    """Connect in the background, resuming the session the broker keeps for this client id
    (clean_start=False, session expiry): unacknowledged QoS 1 messages in either direction
    are delivered again after a reconnect or a restart."""
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    if receive_maximum is not None:
        props.ReceiveMaximum = receive_maximum
    client.connect_async(broker.host, broker.port, keepalive=KEEPALIVE_S, clean_start=False,
                         properties=props)


def shared_filter(pattern: str, group: str | None) -> str:
    """The subscription filter of a bridge: ``$share/<group>/<pattern>`` (MQTT v5 shared
    subscription: the broker splits the messages among the group's members) or, without a
    group, the pattern itself (every subscriber gets every message)."""
    if not group:
        return pattern
    if any(c in group for c in "/+#") or not group.strip():
        raise ValueError(f"MQTT share group must be one topic level, got {group!r}")
    return f"$share/{group}/{pattern}"


def audio_properties(start_rfc3339: str, content_type: str) -> Properties:
    """PUBLISH properties of an audio message: its start time (user property) and the
    MQTT v5 content type (informative; the server reads the container from the bytes)."""
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [(START_PROPERTY, start_rfc3339)]
    props.ContentType = content_type
    return props
