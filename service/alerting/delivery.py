"""The webhook delivery worker: at-least-once, signed (Standard Webhooks), concurrent.

Loop: claim due deliveries (`FOR UPDATE SKIP LOCKED`) and push each one's next attempt a
lease into the future, commit, then send. A worker killed mid-send leaves the claim to
expire and another run sends again with the same `webhook-id`: receivers deduplicate on it.
LISTEN `earshot_webhooks` wakes the loop at once; without a notification it polls every
second. Sends run on a small thread pool so one slow receiver does not hold up the rest.

Outcomes: 2xx delivered; 410 disables the endpoint; 429/503 retry after `Retry-After`;
timeouts, connection errors, 408 and 5xx retry with jittered exponential backoff until the
retry window (a day by default) runs out; other 3xx/4xx stop. Redirects are not followed.
The backoff is the persisted `next_attempt_at` of a row, not an in-process retry loop, so a
retry library (which sleeps in-process) does not fit; it is the one line in `backoff_s`.
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout
from standardwebhooks.webhooks import Webhook

from service.alerting import targets
from service.alerting.outbox import CHANNEL
from service.db import make_pool
from service.queries import webhooks as webhook_queries
from service.settings import Settings, get_settings

log = logging.getLogger("earshot.webhooks")
USER_AGENT = "Earshot-Webhooks/0.1"
POLL_S = 1.0
STOP_CHECK_S = 0.2  # how soon a stop request ends a LISTEN wait
RETRYABLE_4XX = (408, 429)
RETRY_AFTER_STATUSES = (429, 503)
GONE = "the receiver answered 410 Gone"


@dataclass(frozen=True)
class Response:
    """What one attempt produced. `status` None: no HTTP answer (timeout, refused, …)."""

    status: int | None
    error: str | None
    retry_after_s: float | None
    duration_ms: float
    permanent: bool = False  # e.g. the target now resolves to a forbidden address


@dataclass(frozen=True)
class Outcome:
    state: str  # pending (retry at next_attempt_at) | delivered | failed
    next_attempt_at: datetime
    error: str | None
    disable: bool = False


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential in the attempt number, capped, with jitter so endpoints recovering from
    an outage are not hit by every queued message in the same second."""
    return min(max_s, base_s * 2.0 ** max(0, attempt - 1)) * random.uniform(0.5, 1.0)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _stop_reason(status: int) -> str:
    if 300 <= status < 400:
        return f"HTTP {status}: redirects are not followed; point the webhook at the final URL"
    return f"HTTP {status}: the receiver rejected the message; not retried"


def classify(response: Response, attempts: int, give_up_at: datetime, now: datetime,
             settings: Settings) -> Outcome:
    status = response.status
    if status is not None and 200 <= status < 300:
        return Outcome("delivered", now, None)
    if status == 410:
        return Outcome("failed", now, "HTTP 410 Gone: endpoint disabled", disable=True)
    if response.permanent:
        return Outcome("failed", now, response.error)
    if status is not None and status < 500 and status not in RETRYABLE_4XX:
        return Outcome("failed", now, _stop_reason(status))
    error = response.error or f"HTTP {status}"
    delay = backoff_s(attempts, settings.webhook_retry_base_s, settings.webhook_retry_max_s)
    if status in RETRY_AFTER_STATUSES and response.retry_after_s is not None:
        delay = min(response.retry_after_s, settings.webhook_retry_max_s)
    next_at = now + timedelta(seconds=delay)
    if next_at > give_up_at:
        return Outcome("failed", now, f"gave up after {attempts} attempts; last: {error}")
    return Outcome("pending", next_at, error)


def _headers(claim: dict[str, Any], target: targets.Target) -> dict[str, str]:
    # Signed per attempt with the attempt's time (receivers reject stale timestamps); the
    # message id and body are the same on every attempt.
    now = datetime.now(UTC)
    signature = Webhook(claim["secret"]).sign(claim["message_id"], now, claim["body"])
    return {"webhook-id": claim["message_id"], "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature, "content-type": "application/json",
            "user-agent": USER_AGENT, "host": target.host_header}


def send(client: httpx.Client, claim: dict[str, Any], allow_private: bool) -> Response:
    """One attempt: re-check the target after DNS resolution, then POST to that address."""
    start = time.perf_counter()

    def took() -> float:
        return (time.perf_counter() - start) * 1000.0

    try:
        target = targets.resolve(claim["url"], allow_private=allow_private)
    except targets.ForbiddenTargetError as exc:
        return Response(None, exc.detail, None, took(), permanent=True)
    except targets.TargetError as exc:
        return Response(None, exc.detail, None, took())
    extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
    try:
        with client.stream("POST", target.url, content=claim["body"].encode(),
                           headers=_headers(claim, target), extensions=extensions) as reply:
            retry_after = parse_retry_after(reply.headers.get("retry-after"), datetime.now(UTC))
            return Response(reply.status_code, None, retry_after, took())
    except httpx.TimeoutException as exc:
        return Response(None, f"timeout ({type(exc).__name__})", None, took())
    except httpx.HTTPError as exc:
        return Response(None, f"{type(exc).__name__}: {exc}"[:500], None, took())


def _record(pool: ConnectionPool, claim: dict[str, Any], response: Response,
            outcome: Outcome) -> None:
    status_or_error = response.error if response.status is None else None
    with pool.connection() as conn, conn.transaction():
        if outcome.disable:
            # Endpoint row first: concurrent 410s of one endpoint then queue up on it instead
            # of each holding its own delivery row while waiting for the other's (deadlock).
            webhook_queries.disable_endpoint(conn, claim["webhook_id"], GONE)
        webhook_queries.record_attempt(conn, claim["id"], response.status, status_or_error,
                                       response.duration_ms)
        webhook_queries.finish(conn, claim["id"], outcome.state, outcome.next_attempt_at,
                               response.status, outcome.error)
        if outcome.disable:
            webhook_queries.fail_pending(conn, claim["webhook_id"], GONE)


def deliver(settings: Settings, pool: ConnectionPool, client: httpx.Client,
            claim: dict[str, Any]) -> Outcome:
    response = send(client, claim, settings.webhook_allow_private)
    outcome = classify(response, claim["attempts"], claim["give_up_at"], datetime.now(UTC),
                       settings)
    try:
        _record(pool, claim, response, outcome)
    except (psycopg.Error, PoolTimeout):
        # Unrecorded: the claim's lease expires and the message goes out again.
        log.exception("could not record delivery %s", claim["id"])
    return outcome


def claim(settings: Settings, pool: ConnectionPool, limit: int) -> list[dict[str, Any]]:
    lease_s = max(settings.webhook_lease_s, settings.webhook_timeout_s + 1.0)
    try:
        with pool.connection() as conn, conn.transaction():
            return webhook_queries.claim_due(conn, limit, lease_s,
                                             settings.webhook_retry_window_s)
    except (psycopg.Error, PoolTimeout) as exc:
        log.warning("claiming webhook deliveries failed: %s", exc)
        return []


class Listener:
    """LISTEN on its own autocommit connection; reconnects after a database outage."""

    def __init__(self, url: str, stop: threading.Event) -> None:
        self._url, self._stop = url, stop
        self._conn: psycopg.Connection | None = None

    def wait(self, timeout: float) -> None:
        """Return at the first notification, after `timeout`, or soon after stop is set."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
                self._conn.execute(f"LISTEN {CHANNEL}")
            deadline = time.monotonic() + timeout
            while not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
                if any(True for _ in self._conn.notifies(timeout=min(left, STOP_CHECK_S),
                                                         stop_after=1)):
                    break
            # One claim covers every message committed so far: drop the queued wake-ups.
            for _ in self._conn.notifies(timeout=0):
                pass
        except psycopg.Error as exc:
            log.warning("webhook LISTEN connection lost: %s", exc)
            self.close()
            self._stop.wait(timeout)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _client(settings: Settings) -> httpx.Client:
    # No keep-alive: requests go to vetted IP literals with a per-endpoint Host/SNI, and a
    # pooled TLS connection must never be reused for a different endpoint on that IP.
    # trust_env=False: a proxy from the environment would bypass the address checks.
    return httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False,
                        trust_env=False,
                        limits=httpx.Limits(max_connections=settings.webhook_workers,
                                            max_keepalive_connections=0))


def run(settings: Settings, pool: ConnectionPool, stop: threading.Event) -> None:
    """Deliver until `stop` is set; in-flight sends finish before returning."""
    workers = settings.webhook_workers
    listener = Listener(settings.resolved_database_url(), stop)
    in_flight: set[Future[Outcome]] = set()
    with _client(settings) as client, \
            ThreadPoolExecutor(workers, thread_name_prefix="webhook") as executor:
        try:
            while not stop.is_set():
                in_flight = {f for f in in_flight if not f.done()}
                free = workers - len(in_flight)
                claimed = claim(settings, pool, free) if free else []
                for row in claimed:
                    in_flight.add(executor.submit(deliver, settings, pool, client, row))
                if free == 0 or len(claimed) == free:
                    wait(in_flight, timeout=POLL_S, return_when=FIRST_COMPLETED)
                else:
                    listener.wait(POLL_S)
        finally:
            listener.close()


def main() -> None:
    """Run the worker on its own (`python -m service.alerting.delivery`) until SIGTERM."""
    from service import logs

    settings = get_settings()
    logs.configure(settings.log_level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    pool = make_pool(settings, max_size=settings.webhook_workers + 2)
    pool.open(wait=False)
    try:
        run(settings, pool, stop)
    finally:
        pool.close()


if __name__ == "__main__":
    main()
