"""`earshot run`: prepare (admin key, database, migrations, broker) and supervise the API,
worker and MQTT bridge processes in the foreground. SIGINT/SIGTERM stop them all."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from urllib.parse import urlparse

import psycopg

from service import pgcluster
from service.migrate import MigrationError, migrate
from service.settings import Settings

CHILD_STOP_TIMEOUT_S = 15.0


def ensure_admin_key(settings: Settings) -> str:
    """The configured admin key, or one generated once and kept under the data dir (0600)."""
    if settings.admin_key is not None:
        return settings.admin_key.get_secret_value()
    path = settings.data_dir / "admin-key"
    if path.exists():
        return path.read_text().strip()
    key = "esk_admin_" + secrets.token_urlsafe(32)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Created 0600 (never readable by others, not even for a moment), then written.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    try:
        with os.fdopen(fd, "w") as out:
            out.write(key + "\n")
    except OSError as exc:  # e.g. a full disk: never leave a truncated key behind
        path.unlink(missing_ok=True)
        raise _unwritable(path, exc) from exc
    print(f"earshot: generated admin key (shown once, stored in {path}):\n  {key}", flush=True)
    return key


def _unwritable(path: object, exc: OSError) -> SystemExit:
    return SystemExit(f"earshot: cannot store a generated admin key in {path}: "
                      f"{exc.strerror or exc}; make EARSHOT_DATA_DIR writable or set "
                      "EARSHOT_ADMIN_KEY")


def _check_database(settings: Settings) -> None:
    url = settings.resolved_database_url()
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        where = "EARSHOT_DATABASE_URL" if settings.database_url else "the embedded cluster"
        raise SystemExit(f"earshot: cannot reach the database ({where}): "
                         f"{str(exc).strip().splitlines()[0]}") from exc


def _mqtt_broker(settings: Settings) -> subprocess.Popen[bytes] | None:
    """Start a project-owned Mosquitto when nothing answers at EARSHOT_MQTT_URL."""
    url = urlparse(settings.mqtt_url)
    host, port = url.hostname or "127.0.0.1", url.port or 1883
    if host not in ("127.0.0.1", "localhost") or pgcluster.port_in_use(port):
        return None
    state = settings.data_dir / "mosquitto"
    state.mkdir(parents=True, exist_ok=True)
    conf = state / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
                    f"persistence_location {state}/\nautosave_interval 1\n"
                    # Mosquitto's default queue of 1,000 QoS 1 messages per client drops
                    # the rest silently while the bridge is down; keep a day at 1 Hz.
                    "max_queued_messages 100000\n")
    print(f"earshot: no MQTT broker at {settings.mqtt_url}: starting Mosquitto", flush=True)
    return subprocess.Popen(["mosquitto", "-c", str(conf)])


def prepare(settings: Settings) -> dict[str, str]:
    env = dict(os.environ, EARSHOT_ADMIN_KEY=ensure_admin_key(settings))
    if pgcluster.port_in_use(settings.port):
        raise SystemExit(f"earshot: port {settings.port} on {settings.host} is taken: stop "
                         "the program using it or set EARSHOT_PORT")
    if settings.embedded_db:
        try:
            pgcluster.start(settings)
        except (pgcluster.ClusterError, OSError) as exc:
            raise SystemExit(f"earshot: database: {exc}") from exc
    _check_database(settings)
    try:
        migrate(settings)
    except MigrationError as exc:
        raise SystemExit(f"earshot: migrations: {exc}") from exc
    return env


def _children(env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    exe = [sys.executable, "-m", "service.cli"]
    return [subprocess.Popen([*exe, name], env=env) for name in ("api", "worker", "bridge")]


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + CHILD_STOP_TIMEOUT_S
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


def run_all(settings: Settings) -> int:
    env = prepare(settings)
    broker = _mqtt_broker(settings)
    children = _children(env)
    if broker is not None:
        children.append(broker)
    stopping = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    print(f"earshot: API on http://{settings.host}:{settings.port}", flush=True)
    code = 0
    while not stopping:
        exited = [c for c in children if c.poll() is not None]
        if exited:
            code = exited[0].returncode or 1
            print(f"earshot: a process exited ({exited[0].args!r}); stopping", flush=True)
            break
        time.sleep(0.5)
    _stop(children)
    return code

