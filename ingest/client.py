"""Client library for sensors and gateways: send embedding windows or recordings to Earshot.

    with SensorClient("http://earshot:8000", sensor_id, token) as client:
        result = client.send_windows(times_us, vectors)      # binary, retried until stored
        client.upload_audio(wav_bytes, start_us=..., baseline=True)

Every call is safe to repeat: windows are keyed by (sensor, start time) on the server, so a
batch re-sent after a timeout with the same timestamps stores nothing twice. Failures the
service may recover from (connection errors, timeouts, 5xx, 429) are retried with
exponential backoff, honouring ``Retry-After``, until :class:`RetryPolicy` gives up
(:class:`ServiceUnavailableError`); any other 4xx is the caller's bug and is raised at once
(:class:`RejectedError`, carrying the RFC 9457 problem). :class:`MqttSender` offers the same
``send_windows`` over MQTT (QoS 1, returns once the broker acknowledged).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from uuid import UUID

import httpx
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties

from ingest.codec import BINARY_TYPE, encode_binary, to_rfc3339
from ingest.mqtt import (
    AUDIO_TOPIC,
    DEFAULT_TOPIC,
    audio_properties,
    connect_async,
    parse_mqtt_url,
    persistent_client,
    sensor_topic,
)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
AUDIO_TYPES = {".wav": "audio/wav", ".wave": "audio/wav", ".flac": "audio/flac",
               ".ogg": "audio/ogg", ".oga": "audio/ogg"}


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in total time.

    ``give_up_after_s`` bounds how long one call keeps trying; a server's ``Retry-After``
    replaces the computed delay (within that bound).
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2
    give_up_after_s: float = 3600.0

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        if retry_after_s is not None:
            return max(0.0, retry_after_s)
        base = min(self.max_s, self.initial_s * self.multiplier ** attempt)
        return base * (1 + self.jitter * (2 * random.random() - 1))


class ClientError(Exception):
    """Base of everything the client raises."""


class RejectedError(ClientError):
    """The service refused the request (4xx other than 408/429): retrying cannot help."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.problem, self.detail = status, problem, str(detail)


class BrokerRefusedError(ClientError):
    """The MQTT broker answered a publish with a failure reason (e.g. not authorized by its
    ACL): the message was not accepted and resending it cannot help."""


class ServiceUnavailableError(ClientError):
    """The retry policy ran out while the service (or broker) stayed unreachable."""


@dataclass(frozen=True)
class SendResult:
    accepted: int
    duplicates: int


@dataclass(frozen=True)
class UploadResult:
    accepted: int
    duplicates: int
    windows: int
    start: str | None
    end: str | None


class WindowSender(Protocol):
    """Anything that delivers a batch of windows durably (HTTP or MQTT)."""

    def send_windows(self, times_us: np.ndarray, values: np.ndarray,
                     condition: str | None = None) -> SendResult | None: ...

    def close(self) -> None: ...


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent/invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


@dataclass
class _Attempts:
    policy: RetryPolicy
    sleep: Callable[[float], None]
    started: float = field(default_factory=time.monotonic)
    count: int = 0

    def wait(self, what: str, retry_after_s: float | None = None) -> None:
        """Sleep before the next attempt, or raise when the policy's time is up."""
        elapsed = time.monotonic() - self.started
        pause = self.policy.delay(self.count, retry_after_s)
        if elapsed + pause > self.policy.give_up_after_s:
            raise ServiceUnavailableError(
                f"gave up after {self.count + 1} attempts in {elapsed:.0f} s: {what}")
        self.count += 1
        self.sleep(pause)


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    return body if isinstance(body, dict) else {"detail": response.text[:500]}


class SensorClient:
    """One sensor's ingest calls over HTTP (``httpx.Client`` underneath)."""

    def __init__(self, base_url: str, sensor_id: UUID | str, token: str, *,
                 retry: RetryPolicy | None = None, timeout_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.sensor_id = UUID(str(sensor_id))
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s,
                                  headers={"Authorization": f"Bearer {token}"},
                                  transport=transport)

    def __enter__(self) -> SensorClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send_windows(self, times_us: np.ndarray, values: np.ndarray,
                     condition: str | None = None) -> SendResult:
        """POST one batch (binary encoding); returns once the server committed it.
        ``condition`` names the machine's operating condition during these windows."""
        body = encode_binary(times_us, values)
        data = self._post(f"/v1/sensors/{self.sensor_id}/embeddings", content=body,
                          headers={"Content-Type": BINARY_TYPE},
                          params=None if condition is None else {"condition": condition})
        return SendResult(int(data.get("accepted", 0)), int(data.get("duplicates", 0)))

    def upload_audio(self, audio: bytes, *, start_us: int, baseline: bool = False,
                     label: str | None = None, condition: str | None = None,
                     content_type: str = "application/octet-stream") -> UploadResult:
        """POST a recording; the server embeds it into windows from ``start_us`` on.
        ``condition`` names the machine's operating condition during the recording."""
        params: dict[str, str] = {"start": to_rfc3339(start_us),
                                  "baseline": "true" if baseline else "false"}
        if label is not None:
            params["label"] = label
        if condition is not None:
            params["condition"] = condition
        data = self._post(f"/v1/sensors/{self.sensor_id}/audio", content=audio,
                          headers={"Content-Type": content_type}, params=params)
        return UploadResult(int(data.get("accepted", 0)), int(data.get("duplicates", 0)),
                            int(data.get("windows", 0)), data.get("start"), data.get("end"))

    def _post(self, path: str, *, content: bytes, headers: dict[str, str],
              params: dict[str, str] | None = None) -> dict[str, Any]:
        attempts = _Attempts(self.retry, self._sleep)
        while True:
            try:
                response = self._http.post(path, content=content, headers=headers,
                                           params=params)
            except httpx.TransportError as exc:
                attempts.wait(f"{type(exc).__name__}: {exc}")
                continue
            if response.status_code < 300:
                data = response.json()
                return data if isinstance(data, dict) else {}
            if response.status_code not in RETRY_STATUSES:
                raise RejectedError(response.status_code, _problem(response))
            attempts.wait(f"HTTP {response.status_code}",
                          retry_after_seconds(response.headers.get("Retry-After")))


def windows_json(times_us: np.ndarray, values: np.ndarray,
                 condition: str | None = None) -> bytes:
    """The JSON batch body (also the MQTT payload). float32 -> Python float is exact, and
    its shortest repr reads back as the same float32."""
    windows = [{"t": to_rfc3339(int(t)), "v": row.astype(np.float64).tolist()}
               for t, row in zip(times_us, values, strict=True)]
    body: dict[str, Any] = {"windows": windows}
    if condition is not None:
        body["condition"] = condition
    return json.dumps(body, separators=(",", ":")).encode()


class MqttSender:
    """``send_windows`` over MQTT: QoS 1 on a persistent session, returning after PUBACK.

    paho keeps an unacknowledged message and resends it after reconnecting, so waiting
    (bounded by the retry policy) is all a caller does through a broker outage.
    """

    def __init__(self, broker_url: str, sensor_id: UUID | str, *,
                 topic_pattern: str = DEFAULT_TOPIC, client_id: str | None = None,
                 retry: RetryPolicy | None = None,
                 audio_topic_pattern: str = AUDIO_TOPIC) -> None:
        self.sensor_id = UUID(str(sensor_id))
        self.topic = sensor_topic(self.sensor_id, topic_pattern)
        self.audio_topic = sensor_topic(self.sensor_id, audio_topic_pattern)
        self.retry = retry or RetryPolicy()
        broker = parse_mqtt_url(broker_url)
        self._acked: dict[int, mqtt.ReasonCode] = {}
        self._cond = threading.Condition()
        self._client = persistent_client(client_id or f"earshot-sensor-{self.sensor_id}", broker)
        self._client.on_publish = self._on_publish
        connect_async(self._client, broker)
        self._client.loop_start()

    def _on_publish(self, _client: object, _userdata: object, mid: int,
                    reason: mqtt.ReasonCode, _props: object) -> None:
        with self._cond:
            self._acked[mid] = reason
            self._cond.notify_all()

    def send_windows(self, times_us: np.ndarray, values: np.ndarray,
                     condition: str | None = None) -> None:
        self._publish(self.topic, windows_json(times_us, values, condition))

    def upload_audio(self, audio: bytes, *, start_us: int,
                     content_type: str = "application/octet-stream") -> None:
        """One audio file to the audio topic, its start time in a user property; returns
        after the PUBACK (the audio bridge stores it like ``POST /v1/sensors/{id}/audio``)."""
        self._publish(self.audio_topic, audio,
                      audio_properties(to_rfc3339(start_us), content_type))

    def _publish(self, topic: str, payload: bytes | str,
                 properties: Properties | None = None) -> None:
        # PUBACKs are tracked by mid, not MQTTMessageInfo, which refuses to report on a
        # message published while disconnected even after paho delivered it.
        mid = self._client.publish(topic, payload, qos=1, properties=properties).mid
        deadline = time.monotonic() + self.retry.give_up_after_s
        with self._cond:
            while mid not in self._acked:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServiceUnavailableError(
                        f"the MQTT broker did not acknowledge within "
                        f"{self.retry.give_up_after_s:g} s")
                self._cond.wait(min(left, 1.0))
            reason = self._acked.pop(mid)
        if reason.is_failure:
            raise BrokerRefusedError(f"the MQTT broker refused the publish to {topic}: "
                                     f"{reason}")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
