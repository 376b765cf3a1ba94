"""Prometheus metrics shared by the API process."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request, Response
from prometheus_client import Counter, Histogram

REQUESTS = Counter("earshot_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram("earshot_http_request_seconds", "HTTP request latency", ["method", "route"])
WINDOWS_INGESTED = Counter("earshot_windows_ingested_total", "Embedding windows stored",
                           ["path"])
WINDOWS_DUPLICATE = Counter("earshot_windows_duplicate_total", "Windows skipped as duplicates",
                            ["path"])


async def observe(request: Request,
                  call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    template = getattr(route, "path", "unmatched")
    LATENCY.labels(request.method, template).observe(time.perf_counter() - started)
    REQUESTS.labels(request.method, template, str(response.status_code)).inc()
    return response
