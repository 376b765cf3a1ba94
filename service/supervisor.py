"""`earshot run`: prepare (admin key, database, migrations, broker) and supervise the API,
worker(s) and MQTT bridge(s) in the foreground, restarting any that dies. SIGINT/SIGTERM
stop them all."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import psycopg

from service import pgcluster
from service.migrate import MigrationError, migrate
from service.settings import Settings

CHILD_STOP_TIMEOUT_S = 15.0
RESTART_FIRST_S, RESTART_MAX_S = 1.0, 30.0
STABLE_S = 60.0
DEFAULT_SHARE_GROUP = "earshot"


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


def _mqtt_broker(settings: Settings) -> Child | None:
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
    return Child("mosquitto", ["mosquitto", "-c", str(conf)])


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


@dataclass
class Child:
    """One supervised process and its restart state."""

    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    delay_s: float = RESTART_FIRST_S
    restart_at: float | None = None
    restarts: int = 0
    log_path: Path | None = None  # None: the supervisor's own stdout/stderr

    def start(self) -> None:
        if self.log_path is None:
            self.proc = subprocess.Popen(self.args, env=self.env)
        else:
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(self.args, env=self.env, stdout=log,
                                             stderr=subprocess.STDOUT)
        self.started_at, self.restart_at = time.monotonic(), None


class Supervisor:
    """Keeps its children running: one that exits (crash, OOM kill, SIGKILL) is started
    again after a backoff of RESTART_FIRST_S doubling to RESTART_MAX_S, back to the first
    delay once a run lasted STABLE_S. A restarted bridge resumes its MQTT session (same
    client id) and gets every message it had not acknowledged."""

    def __init__(self, children: list[Child]) -> None:
        self.children = children

    def start(self) -> None:
        for child in self.children:
            child.start()

    def tend(self, now: float | None = None) -> list[Child]:
        """Schedule restarts of exited children and start those due; the restarted."""
        now = time.monotonic() if now is None else now
        restarted = []
        for child in self.children:
            if child.proc is None or child.proc.poll() is None:
                continue
            if child.restart_at is None:
                if now - child.started_at >= STABLE_S:
                    child.delay_s = RESTART_FIRST_S
                child.restart_at = now + child.delay_s
                print(f"earshot: {child.name} exited ({child.proc.returncode}); restarting "
                      f"in {child.delay_s:g} s", flush=True)
                child.delay_s = min(child.delay_s * 2, RESTART_MAX_S)
            elif now >= child.restart_at:
                child.start()
                child.restarts += 1
                restarted.append(child)
        return restarted

    def stop(self) -> None:
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + CHILD_STOP_TIMEOUT_S
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


def bridge_client_id(base: str, index: int, count: int) -> str:
    """Stable MQTT client id of bridge `index` of `count` (the base id when alone)."""
    return base if count == 1 else f"{base}-{index + 1}"


def bridge_env(settings: Settings, env: dict[str, str], index: int,
               count: int) -> dict[str, str]:
    """A lone bridge subscribes plainly: Mosquitto 2.0.11 does not keep a shared
    subscription's queued messages across a broker restart (docs/mqtt.md). Several bridges
    need a share group to split the stream: `DEFAULT_SHARE_GROUP` unless one is set."""
    group = settings.mqtt_share_group or (DEFAULT_SHARE_GROUP if count > 1 else "")
    return {**env, "EARSHOT_MQTT_CLIENT_ID": bridge_client_id(settings.mqtt_client_id, index,
                                                              count),
            "EARSHOT_MQTT_SHARE_GROUP": group}


def service_children(settings: Settings, env: dict[str, str], workers: int = 1,
                     bridges: int = 1) -> list[Child]:
    exe = [sys.executable, "-m", "service.cli"]
    children = [Child("api", [*exe, "api"], env)]
    children += [Child(f"worker-{i + 1}", [*exe, "worker"], env) for i in range(workers)]
    for i in range(bridges):
        children.append(Child(f"bridge-{i + 1}", [*exe, "bridge"],
                              bridge_env(settings, env, i, bridges)))
    if bridges:  # audio messages are few and heavy: one audio bridge (service.mqtt_audio)
        children.append(Child("audio-bridge", [*exe, "audio-bridge"], env))
    return children


def run_all(settings: Settings, workers: int = 1, bridges: int = 1) -> int:
    env = prepare(settings)
    broker = _mqtt_broker(settings)
    supervisor = Supervisor(service_children(settings, env, workers, bridges)
                            + ([broker] if broker is not None else []))
    stopping = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    supervisor.start()
    print(f"earshot: API on http://{settings.host}:{settings.port}", flush=True)
    while not stopping:
        supervisor.tend()
        time.sleep(0.5)
    supervisor.stop()
    return 0
