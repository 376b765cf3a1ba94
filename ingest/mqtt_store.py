"""MQTT messages to rows: validation, dead letters and the group commit of the bridge.

A message is validated like a REST batch (``ingest.codec``) against the dimension of the
sensor named by its topic. A group of messages is stored in one transaction; each sensor's
valid messages become a single insert (one message on its own costs about ten round trips).
A message that can never be stored goes to ``ingest_errors`` instead, so the group can
commit and be acknowledged; database outages propagate, so the caller retries the group.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

import numpy as np
import psycopg

from ingest.codec import Batch, BatchLimits
from ingest.codec_group import parse_json_group
from ingest.errors import IngestError
from ingest.store import (
    ConditionSpan,
    SensorBatch,
    UnknownSensorError,
    insert_batches,
    insert_windows,
    record_ingest_error,
    sensor_dim,
)

SOURCE = "mqtt"
EXCERPT_CHARS = 200
DIM_TTL_S = 10.0


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


@dataclass(frozen=True)
class Validator:
    topics: TopicPattern
    limits: BatchLimits
    max_bytes: int

    def parse_group(self, group: list[Inbound], dim_of: Callable[[UUID], int | None]
                    ) -> list[tuple[UUID, Batch] | InvalidMessage]:
        """Each message's (sensor, batch) or why it is invalid; the bodies are validated
        together (`codec_group`), with the answers `parse_batch` gives one by one."""
        addressed = [self._addressee(msg, dim_of) for msg in group]
        bodies = [(msg.payload, to[1]) for msg, to in zip(group, addressed, strict=True)
                  if not isinstance(to, InvalidMessage)]
        parsed = iter(parse_json_group(bodies, self.limits, time.time_ns() // 1000))
        return [to if isinstance(to, InvalidMessage) else _pair(to[0], next(parsed))
                for to in addressed]

    def _addressee(self, msg: Inbound, dim_of: Callable[[UUID], int | None]
                   ) -> tuple[UUID, int] | InvalidMessage:
        """(sensor, its dim) from the topic, or why the message cannot be for one."""
        try:
            sensor_id = self.topics.sensor_id(msg.topic)
        except InvalidMessage as bad:
            return bad
        if len(msg.payload) > self.max_bytes:
            return InvalidMessage(f"payload is {len(msg.payload)} bytes; at most "
                                  f"{self.max_bytes} are accepted", sensor_id)
        dim = dim_of(sensor_id)
        if dim is None:
            return InvalidMessage(f"unknown sensor {sensor_id}", sensor_id)
        return sensor_id, dim


def _pair(sensor_id: UUID, parsed: Batch | IngestError) -> tuple[UUID, Batch] | InvalidMessage:
    if isinstance(parsed, IngestError):
        return InvalidMessage(parsed.detail, sensor_id)
    return sensor_id, parsed


def excerpt(payload: bytes) -> str:
    return payload[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]


def store_group(conn: psycopg.Connection, validator: Validator, dims: DimCache,
                group: list[Inbound]) -> tuple[int, int]:
    """Store a group in one transaction: (windows accepted, messages dead-lettered).
    Raises on database trouble, leaving nothing of the group stored."""
    by_sensor: dict[UUID, list[tuple[Inbound, Batch]]] = {}
    accepted = rejected = 0
    with conn.transaction():
        parsed = validator.parse_group(group, lambda s: dims.lookup(conn, s))
        for msg, item in zip(group, parsed, strict=True):
            if isinstance(item, InvalidMessage):
                _dead_letter(conn, msg, item.sensor_id, item.reason)
                rejected += 1
                continue
            by_sensor.setdefault(item[0], []).append((msg, item[1]))
        stored, refused = _store_sensors(conn, by_sensor)
    return accepted + stored, rejected + refused


def _store_sensors(conn: psycopg.Connection,
                   by_sensor: dict[UUID, list[tuple[Inbound, Batch]]]) -> tuple[int, int]:
    """Every sensor's messages of the group in one statement (`insert_batches`); should
    the database refuse it, sensor by sensor, then message by message."""
    if not by_sensor:
        return 0, 0
    batches = [SensorBatch(sensor_id, np.concatenate([b.times_us for _, b in items]),
                           np.concatenate([b.values for _, b in items]), _spans(items))
               for sensor_id, items in by_sensor.items()]
    try:
        with conn.transaction():  # a savepoint: only this insert is undone if refused
            # ON CONFLICT DO NOTHING also skips a window repeated across messages.
            results = insert_batches(conn, batches)
    except _REFUSALS:
        done = [_store_sensor(conn, s, items) for s, items in by_sensor.items()]
        return sum(d[0] for d in done), sum(d[1] for d in done)
    accepted = rejected = 0
    for (sensor_id, items), result in zip(by_sensor.items(), results, strict=True):
        if result is None:  # deleted within the dims cache's TTL
            for msg, _ in items:
                _dead_letter(conn, msg, sensor_id, f"unknown sensor {sensor_id}")
            rejected += len(items)
        else:
            accepted += result.accepted
    return accepted, rejected


def _store_sensor(conn: psycopg.Connection, sensor_id: UUID,
                  items: list[tuple[Inbound, Batch]]) -> tuple[int, int]:
    """All of a sensor's messages in the group as one insert; should the database refuse
    that, message by message."""
    times = np.concatenate([batch.times_us for _, batch in items])
    values = np.concatenate([batch.values for _, batch in items])
    try:
        with conn.transaction():  # a savepoint: only this insert is undone if refused
            # ON CONFLICT DO NOTHING also skips a window repeated across messages.
            return insert_windows(conn, sensor_id, times, values, _spans(items)).accepted, 0
    except UnknownSensorError:  # deleted within the dims cache's TTL
        for msg, _ in items:
            _dead_letter(conn, msg, sensor_id, f"unknown sensor {sensor_id}")
        return 0, len(items)
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
            return insert_windows(conn, sensor_id, batch.times_us, batch.values,
                                  _spans([(msg, batch)])).accepted
    except _REFUSALS as exc:
        _dead_letter(conn, msg, sensor_id, f"the database refused the batch: {exc}")
        return -1


def _spans(items: list[tuple[Inbound, Batch]]) -> tuple[ConditionSpan, ...]:
    """The conditions the messages' bodies declared ("condition"), one span per message."""
    return tuple(ConditionSpan.of(batch.condition, batch.times_us)
                 for _, batch in items if batch.condition is not None)


def _dead_letter(conn: psycopg.Connection, msg: Inbound, sensor_id: UUID | None,
                 reason: str) -> None:
    record_ingest_error(conn, sensor_id, msg.topic, SOURCE, reason, excerpt(msg.payload))
