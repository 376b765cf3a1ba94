"""Real processes for end-to-end tests: the API under uvicorn and a project-owned Mosquitto,
each on a free 127.0.0.1 port, and the MQTT bridges (`earshot bridge`, `earshot
audio-bridge`), started and stopped by the test that owns them.

Use the fixtures (`live_api`, `mosquitto`) from a conftest or test module, `bridge_process`,
or the classes directly when a test needs to start a process late or restart it mid-test.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from service.settings import Settings
from tests import db as test_db
from tests.conftest import ADMIN_KEY

ROOT = Path(__file__).resolve().parent.parent
# Readiness waits (a process listening, healthy, subscribed) only guard against a hang: a
# process that exits fails the wait at once. Generous, because a fresh, loaded 2-core CI
# machine starting several Python processes at once (cold imports) takes far longer than
# a warm one.
START_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(check: Callable[[], object], timeout_s: float, what: str,
               interval_s: float = 0.05) -> None:
    """Poll ``check()`` until it is truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s:g} s waiting for {what}")


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_S)


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for an Earshot child process using the test's database and admin key."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EARSHOT_")}
    env["EARSHOT_DATABASE_URL"] = settings.resolved_database_url()
    if settings.admin_key is not None:
        env["EARSHOT_ADMIN_KEY"] = settings.admin_key.get_secret_value()
    env["EARSHOT_LOG_LEVEL"] = "WARNING"
    env.update(extra)
    return env


class LiveApi:
    """`uvicorn service.app:app_from_env` in a subprocess against the test database."""

    def __init__(self, settings: Settings, log_dir: Path, **env: str) -> None:
        """``env``: extra ``EARSHOT_*`` variables, e.g. a low rate limit."""
        self.settings, self.port, self._extra_env = settings, free_port(), env
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log_dir / f"api-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> str:
        env = service_env(self.settings, EARSHOT_PORT=str(self.port), **self._extra_env)
        with self._log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "service.app:app_from_env", "--factory",
                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self.url

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"the API exited with {self.proc.returncode}: {self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self) -> None:
        wait_until(self._healthy, START_TIMEOUT_S, f"the API on {self.url}")

    def log_tail(self) -> str:
        return self._log.read_text(errors="replace")[-2000:] if self._log.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


@dataclass(frozen=True)
class ClonedApi:
    """A live API on a database of its own, a connection to that database and an admin
    client of the API."""

    url: str
    settings: Settings
    db: psycopg.Connection
    admin: httpx.Client


@contextmanager
def api_on_clone(base_settings: Settings, log_dir: Path,
                 timeout_s: float = 30.0) -> Iterator[ClonedApi]:
    """A module's API on a clone of the template database (starting the API costs
    seconds, so tests of a module share it; sensors keep them apart), dropped afterwards."""
    name = test_db.clone(base_settings)
    settings = base_settings.model_copy(
        update={"database_url": test_db.database_url(base_settings, name)})
    api = LiveApi(settings, log_dir)
    try:
        url = api.start()
        with psycopg.connect(settings.resolved_database_url(), autocommit=True) as db, \
                httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                             timeout=timeout_s) as admin:
            yield ClonedApi(url, settings, db, admin)
    finally:
        api.stop()
        test_db.drop(base_settings, name)


class Mosquitto:
    """A broker of our own (never the system one on 1883), persistent so a restart keeps
    queued QoS 1 messages and sessions."""

    def __init__(self, state_dir: Path, extra_conf: str = "") -> None:
        """``extra_conf``: more mosquitto.conf lines (e.g. password_file, acl_file with
        ``allow_anonymous false``; the later line wins)."""
        self.port, self.state_dir = free_port(), state_dir
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.conf = state_dir / "mosquitto.conf"
        state_dir.mkdir(parents=True, exist_ok=True)
        # `user` only matters when run as root: stay root rather than drop to a user that
        # cannot write the persistence directory. Mosquitto silently drops QoS 1 messages
        # beyond max_queued_messages (default 1000) per subscriber: raise it, as docs/mqtt.md
        # tells operators to.
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {state_dir}/\nautosave_interval 1\n"
            "max_queued_messages 1000000\n"
            f"user {getpass.getuser()}\nlog_dest file {state_dir}/mosquitto.log\n"
            + extra_conf)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._listening, START_TIMEOUT_S, f"Mosquitto on port {self.port}")

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            pytest.fail(f"mosquitto exited with {self.proc.returncode}")
        return port_open(self.port)

    def stop(self) -> None:
        """SIGTERM: Mosquitto writes its persistence file on the way out."""
        if self.proc is not None:
            stop_process(self.proc)
        wait_until(lambda: not port_open(self.port), STOP_TIMEOUT_S, "Mosquitto to stop")


class BridgeProcess:
    """`earshot <command>` (`bridge` or `audio-bridge`) in a subprocess against the test's
    database and `broker`, logging to `log`; tests kill and restart it to inject faults."""

    def __init__(self, settings: Settings, broker: Mosquitto, log: Path,
                 command: str = "bridge", wait_s: float = START_TIMEOUT_S) -> None:
        self.command, self.log, self.wait_s = command, log, wait_s
        self._env = service_env(settings, EARSHOT_MQTT_URL=broker.url,
                                EARSHOT_MQTT_CLIENT_ID=f"{command}-{uuid.uuid4().hex[:8]}",
                                EARSHOT_LOG_LEVEL="INFO")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", self.command],
                                         cwd=ROOT, env=self._env, stdout=out,
                                         stderr=subprocess.STDOUT)

    def wait_subscribed(self, times: int = 1) -> None:
        """Until the log shows the `times`-th subscription (one per start): messages
        published before the bridge's session first subscribed go nowhere."""
        def subscribed() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"`earshot {self.command}` exited with {self.proc.returncode}: "
                            f"{self.log_text()[-2000:]}")
            return self.log_text().count("subscribed to") >= times

        wait_until(subscribed, self.wait_s, f"`earshot {self.command}` to subscribe")

    def kill(self) -> None:
        """SIGKILL: no cleanup; whatever was received but not acknowledged is in flight."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def bridge_process(settings: Settings, broker: Mosquitto, log: Path, command: str = "bridge",
                   wait_s: float = START_TIMEOUT_S) -> Iterator[BridgeProcess]:
    """A started and subscribed :class:`BridgeProcess`, stopped on the way out with its log
    tail printed (pytest shows it when the test failed)."""
    process = BridgeProcess(settings, broker, log, command, wait_s)
    process.start()
    try:
        process.wait_subscribed()
        yield process
    finally:
        process.stop()
        print(process.log_text()[-4000:])


@pytest.fixture
def live_api(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """Base URL of the real API (uvicorn subprocess) on the test database."""
    api = LiveApi(settings, tmp_path)
    try:
        yield api.start()
    finally:
        api.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
