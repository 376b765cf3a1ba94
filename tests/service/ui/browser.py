"""Chromium driven by Playwright for the dashboard tests and benchmarks: Debian's
/usr/bin/chromium (scripts/setup.sh installs it; Playwright's own browser download cannot
work offline), every request and console error recorded, screenshots kept under
tests/artifacts/ (gitignored)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, Request, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Recorder:
    """What a page did that a test must check: requests, console errors (a CSP violation
    is one), uncaught exceptions and dialogs (an injected alert() would be one)."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> Page:
        page.on("request", self._request)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))
        page.on("dialog", self._dialog)
        return page

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def foreign(self, base_url: str) -> list[str]:
        """Requests that went anywhere but the app under test."""
        return [url for url in self.requests
                if not url.startswith((base_url + "/", "blob:", "data:"))]


def new_page(browser: Browser, recorder: Recorder, width: int = 1280,
             height: int = 900) -> Page:
    context = browser.new_context(viewport={"width": width, "height": height})
    return recorder.attach(context.new_page())


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, base_url: str, key: str) -> None:
    """With the keyboard only: the key field has the focus, Enter submits."""
    page.goto(base_url + "/")
    page.wait_for_url("**/sign-in")
    assert page.evaluate("() => document.activeElement.id") == "key"
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    page.wait_for_url(base_url + "/")
