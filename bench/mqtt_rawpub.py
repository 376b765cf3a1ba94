"""A lean MQTT 3.1.1 QoS 1 publisher for the ingest benchmark: PUBLISH packets written
straight to a socket, up to `inflight` unacknowledged, PUBACKs read in bulk.

Why: paho's client costs about as much CPU per message as the bridge itself (BENCHMARKS.md,
ingest section: ~200-300 µs per one-window message), and on this 2-core box the publishers
share the CPU with the bridge and PostgreSQL, so the measured rate was partly paho's. A
sensor's own CPU is not the service's. The packets are the protocol's (MQTT 3.1.1 §3.1,
§3.3, §3.4): a broker sees an ordinary client; each message still waits for its PUBACK.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

CONNECT, PUBLISH_QOS1, PUBACK, DISCONNECT = 0x10, 0x32, 0x40, 0xE0
READ_CHUNK = 65536
SEND_BATCH = 32  # packets per sendall: fewer syscalls, still far below the inflight cap


def remaining_length(n: int) -> bytes:
    """The fixed header's variable-length integer (§2.2.3)."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def connect_packet(client_id: str, keepalive_s: int = 60) -> bytes:
    body = _utf8("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive_s) + _utf8(client_id)
    return bytes([CONNECT]) + remaining_length(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    head = struct.pack("!H", len(topic)) + topic + struct.pack("!H", packet_id)
    return (bytes([PUBLISH_QOS1]) + remaining_length(len(head) + len(payload)) + head
            + payload)


class Publisher:
    """One connection; `publish_all` returns once every message is acknowledged."""

    def __init__(self, port: int, client_id: str, inflight: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inflight, self.acked, self.sent, self._pending = inflight, 0, 0, b""
        self.sock.sendall(connect_packet(client_id))
        connack = self._read_exactly(4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"broker refused the connection: {connack!r}")

    def _read_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("broker closed the connection")
            data += chunk
        return data

    def _read_acks(self, block: bool) -> None:
        """Count the PUBACKs available (all of them if `block` and none are yet)."""
        self.sock.setblocking(block)
        try:
            data = self.sock.recv(READ_CHUNK)
        except BlockingIOError:
            return
        finally:
            self.sock.setblocking(True)
        if not data:
            raise ConnectionError("broker closed the connection")
        data = self._pending + data
        whole = len(data) - len(data) % 4  # PUBACK: 0x40 0x02 id id
        if whole and data[0] != PUBACK:
            raise ConnectionError(f"unexpected packet from the broker: {data[:4]!r}")
        self.acked += whole // 4
        self._pending = data[whole:]

    def publish_all(self, messages: Iterator[tuple[bytes, bytes]]) -> int:
        """Send (topic, payload) pairs as QoS 1 until the iterator ends; wait for all acks."""
        first, batch = self.sent, []
        for topic, payload in messages:
            self.sent += 1
            batch.append(publish_packet(topic, (self.sent - 1) % 65535 + 1, payload))
            if len(batch) >= SEND_BATCH:
                self.sock.sendall(b"".join(batch))
                batch = []
                self._read_acks(block=False)
                while self.sent - self.acked >= self.inflight:
                    self._read_acks(block=True)
        if batch:
            self.sock.sendall(b"".join(batch))
        self.wait_acked()
        return self.sent - first

    def publish_one(self, topic: bytes, payload: bytes) -> None:
        """Send one QoS 1 message now (a paced sender); acknowledgements are counted as
        they come, `wait_acked` waits for the rest."""
        self.sent += 1
        self.sock.sendall(publish_packet(topic, (self.sent - 1) % 65535 + 1, payload))
        self._read_acks(block=False)
        while self.sent - self.acked >= self.inflight:
            self._read_acks(block=True)

    def wait_acked(self) -> int:
        while self.acked < self.sent:
            self._read_acks(block=True)
        return self.acked

    def close(self) -> None:
        try:
            self.sock.sendall(bytes([DISCONNECT, 0]))
        finally:
            self.sock.close()
