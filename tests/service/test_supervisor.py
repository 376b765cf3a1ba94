"""`earshot run` as a user runs it: real processes, real signals, bad configuration
failing fast with a message that says what to fix."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from service.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.live import wait_until


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EARSHOT_")}
    env.update({"EARSHOT_DATA_DIR": str(tmp_path), "EARSHOT_ADMIN_KEY": ADMIN_KEY,
                "EARSHOT_PORT": str(_free_port()),
                "EARSHOT_MQTT_URL": f"mqtt://127.0.0.1:{_free_port()}"})
    env.update(overrides)
    return env


def _run_failing(env: dict[str, str]) -> tuple[str, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "service.cli", "run"], env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    return result.stderr + result.stdout, time.monotonic() - started


def test_bad_admin_key_format_fails_fast(tmp_path: Path, settings: Settings) -> None:
    env = _env(tmp_path, EARSHOT_ADMIN_KEY="short", EARSHOT_DATABASE_URL=str(settings.database_url))
    output, elapsed = _run_failing(env)
    assert "EARSHOT_ADMIN_KEY" in output and "32-256 characters" in output
    assert elapsed < 15


def test_taken_port_fails_fast(tmp_path: Path, settings: Settings) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        env = _env(tmp_path, EARSHOT_PORT=str(port),
                   EARSHOT_DATABASE_URL=str(settings.database_url))
        output, elapsed = _run_failing(env)
    assert f"port {port}" in output and "EARSHOT_PORT" in output
    assert elapsed < 15


def test_unreachable_external_database_fails_fast(tmp_path: Path) -> None:
    env = _env(tmp_path, EARSHOT_DATABASE_URL=f"postgresql://x:y@127.0.0.1:{_free_port()}/db")
    output, elapsed = _run_failing(env)
    assert "cannot reach the database" in output and "EARSHOT_DATABASE_URL" in output
    assert elapsed < 20


def _wait_ready(base_url: str, proc: subprocess.Popen[str], timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "earshot run exited early"
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=2)
            if response.status_code == 200:
                return dict(response.json())
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError("earshot run did not become ready")


class Output:
    """`earshot run`'s combined output (its children's logs included), read as it comes:
    an unread pipe would also block the children once it filled up."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self._stdout = proc.stdout
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self._stdout:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def count(self, fragment: str) -> int:
        return sum(fragment in line for line in list(self.lines))


@pytest.mark.slow
def test_run_starts_everything_and_stops_cleanly_on_sigterm(tmp_path: Path,
                                                            settings: Settings) -> None:
    env = _env(tmp_path, EARSHOT_DATABASE_URL=str(settings.database_url))
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "run"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = Output(proc)
    try:
        started = time.monotonic()
        body = _wait_ready(f"http://127.0.0.1:{env['EARSHOT_PORT']}", proc, 60)
        ready_s = time.monotonic() - started
        assert body["timescaledb"]["license"] == "apache"
        assert ready_s < 30, f"ready after {ready_s:.1f}s"
        # Every child up (the worker's scheduler, the bridge and the audio bridge
        # subscribed) rather than a fixed pause that a loaded machine may not cover;
        # generous, as it only guards against a hang.
        wait_until(lambda: output.count("scheduler started") >= 1
                   and output.count("subscribed to ") >= 2, 120, "every child to start")
        assert proc.poll() is None
        assert "exited (" not in output.text()  # no child exited on its own
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        output.thread.join(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output.text()
    assert "starting Mosquitto" in output.text()
