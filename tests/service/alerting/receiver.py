"""A real webhook receiver on 127.0.0.1 that verifies Standard Webhooks signatures with the
`standardwebhooks` library and answers as a test scripts it (status, headers, delay)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

MAX_DELAY_S = 30.0


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Received:
    webhook_id: str
    body: bytes
    headers: dict[str, str]
    verified: bool
    status: int
    at: float  # time.time() when the request arrived

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


Plan = Callable[[int, str], Reply]  # (request number from 0, webhook-id) -> reply


class Receiver:
    def __init__(self, plan: Plan | None = None) -> None:
        self.secret: str | None = None
        self.plan: Plan = plan or (lambda _n, _id: Reply())
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def acked(self) -> list[Received]:
        return [r for r in self.snapshot() if 200 <= r.status < 300]

    def of_type(self, event_type: str) -> list[Received]:
        return [r for r in self.acked() if r.payload["type"] == event_type]

    def _verify(self, body: bytes, headers: dict[str, str]) -> bool:
        if self.secret is None:
            return False
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            return False
        return True

    def _answer(self, body: bytes, headers: dict[str, str]) -> Reply:
        with self._lock:
            number = len(self.received)
        webhook_id = headers.get("webhook-id", "")
        reply = self.plan(number, webhook_id)
        verified = self._verify(body, headers)
        status = reply.status if verified else 401
        with self._lock:
            self.received.append(Received(webhook_id, body, headers, verified, status,
                                          time.time()))
        return Reply(status, reply.headers, min(reply.delay_s, MAX_DELAY_S))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = receiver._answer(body, headers)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up (timeout) or was killed

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
