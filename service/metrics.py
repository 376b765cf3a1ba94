"""Prometheus metrics shared by the API process."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("earshot_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("earshot_http_request_seconds", "HTTP request latency", ["method", "route"])
WINDOWS_INGESTED = Counter("earshot_windows_ingested_total", "Embedding windows stored",
                           ["path"])
WINDOWS_DUPLICATE = Counter("earshot_windows_duplicate_total", "Windows skipped as duplicates",
                            ["path"])


class ObserveRequests:
    """Latency and count per route template and status, as plain ASGI middleware: Starlette's
    `BaseHTTPMiddleware` (`app.middleware("http")`) runs every request through an extra task
    and memory streams, measured at a large share of a small ingest request's API time."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            LATENCY.labels(scope["method"], template).observe(time.perf_counter() - started)
            REQUESTS.labels(scope["method"], template, str(status)).inc()
