"""The delivery worker as a real process, killed (SIGKILL) in the middle of a send and
started again: nothing is lost, and the interrupted message goes out again with the same
webhook-id."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from service.settings import Settings
from tests.live import ROOT, service_env, stop_process
from tests.service.alerting.conftest import add_webhook, make_machine, wait_for
from tests.service.alerting.receiver import Receiver, Reply
from tests.service.alerting.test_delivery import emit, states


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = service_env(settings, EARSHOT_WEBHOOK_ALLOW_PRIVATE="true",
                      EARSHOT_WEBHOOK_TIMEOUT_S="2", EARSHOT_WEBHOOK_LEASE_S="3",
                      EARSHOT_WEBHOOK_RETRY_BASE_S="0.1", EARSHOT_WEBHOOK_RETRY_MAX_S="0.5",
                      EARSHOT_WEBHOOK_WORKERS="4")
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "service.alerting.delivery"], cwd=ROOT,
                                env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_worker_killed_mid_send_loses_nothing(conn: psycopg.Connection, receiver: Receiver,
                                              settings: Settings, tmp_path: Path) -> None:
    held = threading.Event()

    def plan(n: int, _id: str) -> Reply:
        if n == 0:  # the first request hangs until the worker that sent it is dead
            held.set()
            return Reply(200, delay_s=8.0)
        return Reply(200)

    receiver.plan = plan
    machine_id, _ = make_machine(conn)
    webhook_id, receiver.secret = add_webhook(conn, receiver.url, ["alert.firing"])
    sent = emit(conn, machine_id, 6)
    log = tmp_path / "worker.log"
    first = start_worker(settings, log)
    try:
        wait_for(held.is_set, 20, "the first request to reach the receiver")
        first.kill()
        first.wait(timeout=10)
    finally:
        stop_process(first)
    interrupted = receiver.snapshot()[0].webhook_id
    row = conn.execute("SELECT state FROM webhook_deliveries WHERE message_id = %s",
                       (interrupted,)).fetchone()
    conn.commit()
    assert row == ("pending",), "the killed send was never recorded"
    second = start_worker(settings, log)
    try:
        wait_for(lambda: states(conn, webhook_id) == {"delivered"}, 30,
                 "every message delivered after the restart")
    finally:
        stop_process(second)
    got = receiver.snapshot()
    assert all(r.verified for r in got), log.read_text()
    assert {r.webhook_id for r in got} == set(sent)
    # The interrupted message went out again under the same webhook-id and body.
    again = [r for r in got if r.webhook_id == interrupted]
    assert len(again) >= 2 and len({r.body for r in again}) == 1
