"""The delivery worker against a real receiver on 127.0.0.1: signatures, retries,
Retry-After, 410, stops, timeouts, redirects, the delivery-time target check and latency."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from service.alerting import outbox
from service.settings import Settings
from tests.service.alerting.conftest import WorkerThread, add_webhook, make_machine, wait_for
from tests.service.alerting.receiver import Receiver, Reply


def emit(conn: psycopg.Connection, machine_id: UUID, n: int = 1) -> list[str]:
    ids = []
    for i in range(n):
        with conn.transaction():
            message_id = outbox.enqueue_event(conn, "alert.firing", {"n": i}, machine_id)
        assert message_id is not None
        ids.append(message_id)
    return ids


def deliveries(conn: psycopg.Connection, webhook_id: UUID) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT message_id, state, attempts, last_status, last_error "
                        "FROM webhook_deliveries WHERE webhook_id = %s", (webhook_id,))
    names = ("message_id", "state", "attempts", "last_status", "last_error")
    return [dict(zip(names, row, strict=True)) for row in rows]


def states(conn: psycopg.Connection, webhook_id: UUID) -> set[str]:
    return {d["state"] for d in deliveries(conn, webhook_id)}


@pytest.mark.slow
def test_receiver_failing_for_a_while_gets_every_message_once(
        conn: psycopg.Connection, receiver: Receiver, worker: WorkerThread) -> None:
    failing_until = time.time() + 1.5
    receiver.plan = lambda _n, _id: Reply(500 if time.time() < failing_until else 200)
    machine_id, _ = make_machine(conn)
    webhook_id, receiver.secret = add_webhook(conn, receiver.url, ["alert.firing"])
    sent = emit(conn, machine_id, 12)
    wait_for(lambda: states(conn, webhook_id) == {"delivered"}, 20, "all delivered")
    got = receiver.snapshot()
    assert all(r.verified for r in got), "every attempt carries a valid signature"
    assert any(r.status == 500 for r in got), "the outage really happened"
    acked = Counter(r.webhook_id for r in got if r.status == 200)
    assert sorted(acked) == sorted(sent) and set(acked.values()) == {1}
    # Retries resend the same message: same webhook-id, byte-identical body.
    for message_id in sent:
        bodies = {r.body for r in got if r.webhook_id == message_id}
        assert len(bodies) == 1
    assert max(d["attempts"] for d in deliveries(conn, webhook_id)) >= 2


def test_retry_after_is_honoured(conn: psycopg.Connection, receiver: Receiver,
                                 fast_settings: Settings, pool: ConnectionPool) -> None:
    receiver.plan = lambda n, _id: Reply(429, {"Retry-After": "2"}) if n == 0 else Reply(200)
    machine_id, _ = make_machine(conn)
    webhook_id, receiver.secret = add_webhook(conn, receiver.url, ["alert.firing"])
    # Backoff capped at 0.5 s: only Retry-After can make the worker wait 2 s.
    settings = fast_settings.model_copy(update={"webhook_retry_max_s": 10.0})
    the_worker = WorkerThread(settings, pool).start()
    try:
        emit(conn, machine_id)
        wait_for(lambda: states(conn, webhook_id) == {"delivered"}, 10, "delivery")
    finally:
        the_worker.stop()
    first, second = receiver.snapshot()
    assert second.at - first.at >= 1.9  # the backoff alone would be ~0.1 s


def test_410_disables_the_endpoint_and_stops_its_deliveries(
        conn: psycopg.Connection, receiver: Receiver, worker: WorkerThread) -> None:
    receiver.plan = lambda _n, _id: Reply(410)
    machine_id, _ = make_machine(conn)
    webhook_id, receiver.secret = add_webhook(conn, receiver.url, ["alert.firing"])
    emit(conn, machine_id, 3)
    wait_for(lambda: states(conn, webhook_id) == {"failed"}, 10, "deliveries stopped")
    enabled, reason = conn.execute("SELECT enabled, disabled_reason FROM webhooks WHERE id = %s",
                                   (webhook_id,)).fetchone() or (None, None)
    assert enabled is False and "410" in reason
    count = len(receiver.snapshot())
    # New events no longer go to a disabled endpoint.
    with conn.transaction():
        assert outbox.enqueue_event(conn, "alert.firing", {}, machine_id) is None
    time.sleep(0.5)
    assert len(receiver.snapshot()) == count <= 3


@pytest.mark.parametrize(("reply", "why"), [
    (Reply(400), "rejected"),
    (Reply(302, {"Location": "http://127.0.0.1:9/elsewhere"}), "redirects are not followed"),
])
def test_other_4xx_and_redirects_stop_without_retrying(
        conn: psycopg.Connection, receiver: Receiver, worker: WorkerThread, reply: Reply,
        why: str) -> None:
    receiver.plan = lambda _n, _id: reply
    machine_id, _ = make_machine(conn)
    webhook_id, receiver.secret = add_webhook(conn, receiver.url, ["alert.firing"])
    emit(conn, machine_id)
    wait_for(lambda: states(conn, webhook_id) == {"failed"}, 10, "failure")
    (row,) = deliveries(conn, webhook_id)
    assert row["attempts"] == 1 and row["last_status"] == reply.status and why in row["last_error"]
    time.sleep(0.5)
    assert len(receiver.snapshot()) == 1


@pytest.mark.slow
def test_timeouts_are_retried(conn: psycopg.Connection, receiver: Receiver,
                              worker: WorkerThread) -> None:
    receiver.plan = lambda n, _id: Reply(200, delay_s=1.6 if n == 0 else 0.0)  # timeout 1 s
    machine_id, _ = make_machine(conn)
    webhook_id, receiver.secret = add_webhook(conn, receiver.url, ["alert.firing"])
    emit(conn, machine_id)
    wait_for(lambda: states(conn, webhook_id) == {"delivered"}, 15, "delivery after timeout")
    errors = [r[0] for r in conn.execute("SELECT error FROM webhook_attempts ORDER BY id")]
    assert errors[0] is not None and "timeout" in errors[0] and errors[-1] is None


def test_private_target_is_refused_at_delivery_time(
        conn: psycopg.Connection, receiver: Receiver, fast_settings: Settings,
        pool: ConnectionPool) -> None:
    # Created while private targets were allowed; the worker runs with them forbidden, as
    # when DNS of a once-public name starts pointing inward.
    machine_id, _ = make_machine(conn)
    webhook_id, receiver.secret = add_webhook(conn, receiver.url, ["alert.firing"])
    strict = fast_settings.model_copy(update={"webhook_allow_private": False})
    the_worker = WorkerThread(strict, pool).start()
    try:
        emit(conn, machine_id)
        wait_for(lambda: states(conn, webhook_id) == {"failed"}, 10, "refusal")
    finally:
        the_worker.stop()
    (row,) = deliveries(conn, webhook_id)
    assert "loopback" in row["last_error"] and receiver.snapshot() == []


def test_delivery_latency_from_commit_to_receiver(
        conn: psycopg.Connection, receiver: Receiver, worker: WorkerThread) -> None:
    machine_id, _ = make_machine(conn)
    webhook_id, receiver.secret = add_webhook(conn, receiver.url, ["alert.firing"])
    time.sleep(0.3)  # let the worker reach its LISTEN wait: measure wake-up, not start-up
    committed: dict[str, float] = {}
    for i in range(60):
        with conn.transaction():
            message_id = outbox.enqueue_event(conn, "alert.firing", {"n": i}, machine_id)
        assert message_id is not None
        committed[message_id] = time.time()
        time.sleep(0.02)
    wait_for(lambda: len(receiver.acked()) >= 60, 20, "60 deliveries")
    latency = sorted((r.at - committed[r.webhook_id]) * 1000 for r in receiver.acked())
    p50, p95 = statistics.median(latency), latency[int(0.95 * len(latency)) - 1]
    print(f"\nwebhook delivery latency over {len(latency)} messages: "
          f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {latency[-1]:.1f} ms")
    assert p95 < 1000, "NOTIFY should wake the worker well before the 1 s poll"
    assert datetime.now(UTC) and states(conn, webhook_id) <= {"delivered", "pending"}
