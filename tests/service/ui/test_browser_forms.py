"""The dashboard's forms in Chromium against a live API: each sends JSON to the same /v1
API (htmx `earshot-json` extension, CSRF header from the page) and the page shows the
result: a silence (local date-times become RFC 3339), the alert rule (numbers and a
checkbox), a webhook (event checkboxes; its secret shown once), a baseline marked by
dragging across the timeline, and look-and-listen where only embeddings were kept (the
coarse heatmap and its note, no audio player)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect

from service.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.live import LiveApi
from tests.service.ui import browser as chrome

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def live_api(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """The API process, allowed to deliver webhooks to 127.0.0.1 (as the tests' settings)."""
    api = LiveApi(settings, tmp_path, EARSHOT_WEBHOOK_ALLOW_PRIVATE="true")
    try:
        yield api.start()
    finally:
        api.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chrome.chromium() as the_browser:
        yield the_browser


def embeddings_machine(url: str) -> str:
    """A machine whose sensor sent ten minutes of logmel-v1 vectors (no audio)."""
    with httpx.Client(base_url=url, headers=ADMIN, timeout=30) as api:
        machine = api.post("/v1/machines", json={"name": "fan-2", "kind": "fan"}).json()
        sensor = api.post(f"/v1/machines/{machine['id']}/sensors",
                          json={"name": "mic", "embedding": {"kind": "logmel-v1"}}).json()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    rng = np.random.default_rng(0)
    windows = [{"t": (start + timedelta(seconds=i)).isoformat(),
                "v": rng.normal(-40, 5, 128).round(3).tolist()} for i in range(600)]
    sent = httpx.post(f"{url}/v1/sensors/{sensor['id']}/embeddings", json={"windows": windows},
                      headers={"Authorization": f"Bearer {sensor['ingest_token']}"}, timeout=60)
    assert sent.status_code == 200, sent.text
    return str(machine["id"])


def drag_across_chart(page: Page, start: float, end: float) -> None:
    """Select a range on the uPlot chart with the mouse (fractions of its width)."""
    page.locator("#timeline").scroll_into_view_if_needed()
    box = page.locator("#timeline .u-over").bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end, y, steps=8)
    page.mouse.up()


def test_forms_send_json_to_the_api(live_api: str, browser: Browser) -> None:
    machine_id = embeddings_machine(live_api)
    recorder = chrome.Recorder()
    page = chrome.new_page(browser, recorder)
    chrome.sign_in(page, live_api, ADMIN_KEY)
    page.goto(f"{live_api}/machines/{machine_id}?span=3600")
    page.wait_for_selector("#timeline[data-drawn]")

    page.fill("input[name=start]", "2030-01-01T08:00")
    page.fill("input[name=end]", "2030-01-01T10:00")
    page.fill("input[name=reason]", "bearing swap <b>now</b>")
    page.click("form[hx-post$='/silences'] button[type=submit]")
    expect(page.locator("#toast")).to_have_text("Silence added")
    expect(page.locator("#machine-details")).to_contain_text("bearing swap <b>now</b>")

    page.fill("input[name=k]", "2")
    page.uncheck("input[name=enabled]")
    page.click("form[hx-put$='/alert-rule'] button[type=submit]")
    expect(page.locator("#toast")).to_have_text("Alert rule saved")
    with httpx.Client(base_url=live_api, headers=ADMIN) as api:
        rule = api.get(f"/v1/machines/{machine_id}/alert-rule").json()
        silence = api.get(f"/v1/machines/{machine_id}/silences").json()["items"][0]
    assert (rule["k"], rule["enabled"], rule["n"]) == (2, False, 5)
    assert silence["reason"] == "bearing swap <b>now</b>"

    page.fill("input[name=k]", "9")  # more than n: the API's problem detail is shown
    page.click("form[hx-put$='/alert-rule'] button[type=submit]")
    expect(page.locator("#toast")).to_contain_text("k")
    expect(page.locator("#toast")).to_have_class("show error")

    drag_across_chart(page, 0.87, 0.98)  # the data: the last 10 minutes of the hour
    expect(page.locator("#selection")).to_contain_text("Selected")
    page.click("#listen-sel")
    expect(page.locator("#spectrogram")).to_be_visible(timeout=30_000)
    assert page.get_attribute("#spectrogram", "data-source") == "embeddings"
    expect(page.locator("#listen-note")).to_contain_text("No audio was kept")
    expect(page.locator("#player")).to_be_hidden()
    chrome.screenshot(page, "machine-embeddings-only")
    page.click("#baseline-sel")
    expect(page.locator("#toast")).to_have_text("Baseline marked")
    with httpx.Client(base_url=live_api, headers=ADMIN) as api:
        (baseline,) = api.get(f"/v1/machines/{machine_id}/baselines").json()["items"]
    assert baseline["note"] == "marked on the dashboard"

    page.goto(f"{live_api}/setup")
    page.fill("form[hx-post='/v1/webhooks'] input[name=url]", "http://127.0.0.1:9/hook")
    page.check("input[value='model.trained']")
    page.click("form[hx-post='/v1/webhooks'] button[type=submit]")
    expect(page.locator("[data-testid=webhook-secret]")).to_have_text(
        re.compile(r"^whsec_"))
    expect(page.locator("#webhooks article h3")).to_have_text("http://127.0.0.1:9/hook")
    with httpx.Client(base_url=live_api, headers=ADMIN) as api:
        (hook,) = api.get("/v1/webhooks").json()["items"]
    assert sorted(hook["events"]) == sorted(
        ["alert.firing", "alert.resolved", "alert.acknowledged", "model.trained"])
    chrome.screenshot(page, "setup-webhook")
    unexpected = [e for e in recorder.errors if "422" not in e]  # the deliberate k > n
    assert recorder.foreign(live_api) == [] and unexpected == [], recorder.errors
