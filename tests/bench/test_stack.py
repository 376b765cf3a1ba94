"""The benchmarks' webhook receiver: real HTTP on 127.0.0.1, Standard Webhooks signatures
checked with the `standardwebhooks` library."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

from bench.stack import Receiver, wait_until
from service.alerting.outbox import new_secret


def post(url: str, secret: str, message_id: str, payload: dict[str, object]) -> int:
    body = json.dumps(payload)
    now = datetime.now(UTC)
    headers = {"webhook-id": message_id, "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": Webhook(secret).sign(message_id, now, body),
               "content-type": "application/json"}
    return httpx.post(url, content=body, headers=headers, timeout=5.0).status_code


def test_receiver_records_arrivals_and_checks_signatures() -> None:
    secret = new_secret()
    with Receiver(secret=secret) as receiver:
        before = time.monotonic()
        assert post(receiver.url, secret, "msg_good", {"type": "alert.firing"}) == 204
        assert post(receiver.url, new_secret(), "msg_forged", {"type": "x"}) == 204
        wait_until(lambda: len(receiver.snapshot()) == 2, 5.0, "two arrivals")
    good, forged = receiver.snapshot()
    assert (good.webhook_id, good.verified, good.payload) == \
        ("msg_good", True, {"type": "alert.firing"})
    assert (forged.webhook_id, forged.verified) == ("msg_forged", False)
    assert before <= good.at <= time.monotonic()
