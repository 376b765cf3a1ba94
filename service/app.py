"""The FastAPI application factory."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from ingest.group_commit import GroupCommitter
from service import logs, metrics, problems
from service.api import embeddings, health, v1
from service.api.embeddings import TargetCache
from service.bodylimit import BodyLimit
from service.db import make_pool
from service.ratelimit import RateLimiter
from service.schemas.problem import PROBLEM_RESPONSES
from service.security import PrincipalCache
from service.settings import Settings, get_settings
from service.ui import mount as ui

log = logging.getLogger("earshot.api")
WARM_MESSAGE = "ML imports warm in"  # benchmarks wait for it before measuring


def _warm_ml_imports() -> None:
    """Import the ML stack off the request path so the API is up in about a second and
    the first detector/classifier request does not pay seconds of imports; embed one
    window so the first audio upload does not pay librosa's JIT compilation (measured
    11.8 s on a loaded box, 0.1 s after)."""
    started = time.perf_counter()
    importlib.import_module("detectors.registry")
    features = importlib.import_module("ingest.features")
    features.embed(np.zeros((16000, 1), np.float32), 16000)
    log.info("%s %.1f s", WARM_MESSAGE, time.perf_counter() - started)


def create_app(settings: Settings | None = None, pool: ConnectionPool | None = None) -> FastAPI:
    settings = settings or get_settings()
    owned_pool = pool is None
    the_pool = pool or make_pool(settings, autocommit=True)
    read_pool = (make_pool(settings, autocommit=True, url=settings.database_read_url)
                 if settings.database_read_url else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if owned_pool:
            # wait=False: the API starts even while the database is down; /readyz says why.
            the_pool.open(wait=False)
        if read_pool is not None:
            read_pool.open(wait=False)
        threading.Thread(target=_warm_ml_imports, name="warm-imports", daemon=True).start()
        try:
            yield
        finally:
            committer.close()  # the batches already queued are committed and answered
            if owned_pool:
                the_pool.close()
            if read_pool is not None:
                read_pool.close()

    # /docs is served from vendored files by service.ui.mount; ReDoc would need a CDN.
    # Metrics are Prometheus (/metrics). FastAPI's native OpenTelemetry hooks, never
    # configured here, looked up the global providers on every request: ~5 % of a small
    # ingest request's API CPU in a profile (BENCHMARKS.md, ingest).
    app = FastAPI(title="Earshot", version="0.1.0", lifespan=lifespan, docs_url=None,
                  redoc_url=None, responses=PROBLEM_RESPONSES,
                  telemetry={"tracing": False, "metrics": False, "logs": False},
                  description="Acoustic condition monitoring: embeddings, per-machine "
                              "detectors, anomaly timelines, classes, events and alerts.")
    app.state.pool = the_pool
    app.state.read_pool = read_pool or the_pool
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
    app.state.principal_cache = PrincipalCache(settings.auth_cache_s)
    app.state.ingest_committer = committer = GroupCommitter(the_pool)
    app.state.ingest_targets = TargetCache()
    # Innermost user middleware: its 413 is raised in the route's own task, where the
    # exception handlers see it (outside a BaseHTTPMiddleware it would be an ExceptionGroup).
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(metrics.ObserveRequests)
    problems.install(app)
    # The ingest hot path first: FastAPI tries routes in order, and matching a request
    # against the ~80 routes before it cost more than the rest of a small request.
    app.include_router(embeddings.router, prefix="/v1")
    app.include_router(health.router)
    app.include_router(v1)
    ui.mount(app, settings)
    return app


def app_from_env() -> FastAPI:
    """uvicorn entry point (`service.app:app_from_env` with --factory)."""
    settings = get_settings()
    logs.configure(settings.log_level)
    return create_app(settings)
