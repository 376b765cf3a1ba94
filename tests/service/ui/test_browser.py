"""The dashboard in a real browser (Chromium via Playwright) against the live stack: the
API and a worker (`earshot scheduler`) as processes on the test database, a sensor
uploading real BLDC recordings (healthy, then a propeller fault). Every request the pages
make stays on 127.0.0.1; no console error (a CSP violation is one) and no dialog (an
injected script) happens; screenshots of each page land in tests/artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from service.settings import Settings
from tests.badinput.test_names import NAMES
from tests.conftest import ADMIN_KEY, DATA_DIR
from tests.live import LiveApi
from tests.service.scheduler.test_processes import Scheduler
from tests.service.ui import browser as chrome

BLDC = DATA_DIR / "bldc"
HEALTHY = [f"bldc_motor__healthy_M1_{rpm}rpm.wav" for rpm in (1400, 1450, 1550, 1750, 1850,
                                                             1950)]
FAULT = [f"bldc_motor__propeller_M1_{rpm}rpm.wav" for rpm in (1400, 1450)]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
WRITES = "[hx-post]:not([hx-post='/sign-out']), [hx-put], [hx-patch], [hx-delete], " \
         "form[method=post]:not([action='/sign-out'])"


@dataclass
class Stack:
    url: str
    api: httpx.Client


@pytest.fixture
def stack(settings: Settings, tmp_path: Path) -> Iterator[Stack]:
    api = LiveApi(settings, tmp_path)
    worker = Scheduler(settings, tmp_path / "worker.log", EARSHOT_SCORING_POLL_S="0.2")
    try:
        url = api.start()
        worker.wait_started()
        with httpx.Client(base_url=url, headers=ADMIN, timeout=30) as client:
            yield Stack(url, client)
    finally:
        worker.terminate()
        api.stop()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chrome.chromium() as the_browser:
        yield the_browser


def upload(stack: Stack, sensor_id: str, token: str, names: list[str], start: datetime,
           baseline: bool) -> datetime:
    """Send clips back to back as the sensor would; the time after the last one."""
    for name in names:
        body = (BLDC / name).read_bytes()
        answer = httpx.post(f"{stack.url}/v1/sensors/{sensor_id}/audio", content=body,
                            params={"start": start.isoformat(),
                                    "baseline": str(baseline).lower()},
                            headers={"Authorization": f"Bearer {token}",
                                     "Content-Type": "audio/wav"}, timeout=60)
        assert answer.status_code == 200, answer.text
        start = datetime.fromisoformat(answer.json()["end"]) + timedelta(seconds=1)
    return start


def register(page: Page, url: str) -> tuple[str, str]:
    """Register a machine and its sensor on the set-up page: (sensor id, ingest token)."""
    page.goto(url + "/setup")
    page.fill("input[name=name]", "bldc-m1")
    page.fill("input[name=kind]", "motor")
    page.fill("input[name=labels]", "line=3")
    page.click("form[hx-post='/setup/machines'] button[type=submit]")
    token = page.locator("[data-testid=ingest-token]").inner_text()
    command = page.locator("[data-testid=sensor-command]").inner_text()
    sensor_id = re.search(r"--sensor-id ([0-9a-f-]{36})", command)
    assert sensor_id is not None and token.startswith("est_") and url in command
    chrome.screenshot(page, "setup-registered")
    return sensor_id.group(1), token


def train(page: Page, url: str, machine_id: str) -> None:
    page.goto(f"{url}/machines/{machine_id}/models")
    page.select_option("select[name=algorithm]", "mahalanobis")
    page.click("form[hx-put] button[type=submit]")
    expect(page.locator("#toast")).to_have_text("Detector saved")
    page.click("button:has-text('Train detector now')")
    expect(page.locator("[data-testid=detector-versions] strong")).to_have_text(
        "active", timeout=90_000)
    chrome.screenshot(page, "models")


def hostile_machines(stack: Stack) -> None:
    for i, name in enumerate(NAMES):
        made = stack.api.post("/v1/machines", json={"name": name, "kind": f"hostile-{i}",
                                                    "labels": {"k": name}})
        assert made.status_code == 201, made.text


def look_and_listen(page: Page) -> None:
    """On an alert's page: the spectrogram of its span and a playable audio source."""
    page.click("#listen-sel")
    picture = page.locator("#spectrogram")
    expect(picture).to_be_visible(timeout=30_000)
    assert picture.get_attribute("data-source") == "audio"
    assert page.evaluate("() => document.getElementById('spectrogram').naturalWidth") > 10
    player = page.locator("#player")
    expect(player).to_be_visible()
    source = player.get_attribute("src")
    assert source and "/audio?start=" in source
    playable = page.evaluate("""async () => {
        const player = document.getElementById('player');
        const answer = await fetch(player.src);
        const kind = answer.headers.get('content-type');
        return {status: answer.status, kind, can: player.canPlayType(kind)};
    }""")
    assert playable["status"] == 200 and playable["kind"] == "audio/wav", playable
    assert playable["can"] in ("maybe", "probably"), playable
    page.evaluate("() => document.getElementById('player').load()")
    page.wait_for_function("() => document.getElementById('player').readyState >= 1",
                           timeout=15_000)  # Chromium read the WAV header: playable


@pytest.mark.slow
def test_dashboard_end_to_end(stack: Stack, browser: Browser) -> None:
    read_key = stack.api.post("/v1/api-keys", json={"name": "viewer", "role": "read"}).json()
    hostile_machines(stack)
    recorder = chrome.Recorder()
    page = chrome.new_page(browser, recorder)
    chrome.sign_in(page, stack.url, ADMIN_KEY)
    assert ADMIN_KEY not in page.content()
    sensor_id, token = register(page, stack.url)
    machine_id = stack.api.get(f"/v1/sensors/{sensor_id}").json()["machine_id"]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
    after_normal = upload(stack, sensor_id, token, HEALTHY, start, baseline=True)
    train(page, stack.url, machine_id)

    page.goto(stack.url + "/")
    row = page.locator(f"tr[data-machine-id='{machine_id}']")
    expect(row).to_have_attribute("data-state", re.compile("ok|watch|no_data"))
    upload(stack, sensor_id, token, FAULT, after_normal, baseline=False)
    # No reload: the overview refreshes itself until the machine turns to alarm.
    expect(row).to_have_attribute("data-state", "alarm", timeout=60_000)
    expect(page.locator("tbody tr").first).to_have_attribute("data-machine-id", machine_id)
    chrome.screenshot(page, "overview")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    chrome.screenshot(page, "overview-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    row.locator("a").first.click()
    page.wait_for_selector("#timeline[data-drawn]")
    expect(page.locator("[data-testid=health]")).to_have_text("Alarm")
    expect(page.locator("#timeline-summary")).to_contain_text("alert span")
    chrome.screenshot(page, "machine")

    page.goto(stack.url + "/alerts?state=firing")
    page.locator("tr[data-state=firing] a[href^='/alerts/']").first.click()
    page.wait_for_selector("#timeline[data-drawn]")
    look_and_listen(page)
    chrome.screenshot(page, "alert")
    page.click("#alert-rows button:has-text('Acknowledge')")
    expect(page.locator("#alert-rows td:has-text('acknowledged')")).to_be_visible()
    alert = stack.api.get("/v1/alerts", params={"machine_id": machine_id}).json()["items"][0]
    assert alert["acknowledged"] is True

    page.click("button:has-text('Sign out')")
    page.wait_for_url("**/sign-in")
    page.goto(stack.url + "/alerts")
    page.wait_for_url("**/sign-in?next=/alerts")

    chrome.sign_in(page, stack.url, read_key["key"])
    for path, name in (("/", "read-overview"), (f"/machines/{machine_id}", "read-machine"),
                       (f"/machines/{machine_id}/models", "read-models"),
                       ("/alerts", "read-alerts"), (f"/alerts/{alert['id']}", "read-alert")):
        page.goto(stack.url + path)
        assert page.locator(WRITES).count() == 0, path
        chrome.screenshot(page, name)
    assert page.locator("a[href='/setup']").count() == 0

    assert recorder.foreign(stack.url) == [], recorder.foreign(stack.url)
    assert recorder.dialogs == [], recorder.dialogs  # no hostile name ran as script
    assert recorder.errors == [], recorder.errors
    assert read_key["key"] not in page.content() and ADMIN_KEY not in page.content()
    print(f"\n{len(recorder.requests)} requests, all to {stack.url}")
