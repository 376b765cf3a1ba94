"""The real stack for the service benchmarks: a fresh database on the embedded cluster, the
API (uvicorn, as `earshot api` runs it) and `earshot scheduler` as subprocesses, an admin
HTTP client, and a webhook receiver on 127.0.0.1 that checks signatures.

Every child runs in its own session (process group) and is stopped by killing the group,
so nothing it spawned outlives the benchmark, whatever raised in between.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import soundfile as sf
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bench.common import OUT_DIR, REPO, Clip
from service import pgcluster, security
from service.app import WARM_MESSAGE
from service.migrate import migrate
from service.settings import Settings

BENCH_DB = "earshot_bench"
MEDIA = {".wav": "audio/wav", ".ogg": "audio/ogg", ".flac": "audio/flac"}
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
EARSHOT = Path(sys.executable).parent / "earshot"
# One BLAS thread per process, as `earshot` sets it (service.cli).
_SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class StackError(RuntimeError):
    """A process of the stack did not start, or died."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], object], timeout_s: float, what: str,
               interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise StackError(f"timed out after {timeout_s:g} s waiting for {what}")


def fresh_database(name: str = BENCH_DB) -> Settings:
    """Drop and re-create `name` on the embedded cluster, migrated; settings pointing at it
    with a random admin key."""
    base = Settings()
    pgcluster.start(base)
    server = base.resolved_database_url().rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    settings = Settings(database_url=f"{server}/{name}",
                        admin_key="bench_" + secrets.token_urlsafe(32),
                        webhook_allow_private=True)
    migrate(settings)
    return settings


def drop_database(settings: Settings) -> None:
    url = settings.resolved_database_url()
    server, name = url.rsplit("/", 1)
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def child_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EARSHOT_")}
    env.update(_SINGLE_THREAD)
    env["EARSHOT_DATABASE_URL"] = settings.resolved_database_url()
    assert settings.admin_key is not None
    env["EARSHOT_ADMIN_KEY"] = settings.admin_key.get_secret_value()
    env["EARSHOT_WEBHOOK_ALLOW_PRIVATE"] = "true"
    env["EARSHOT_LOG_LEVEL"] = "WARNING"
    env.update(extra)
    return env


class Child:
    """A subprocess in its own process group, logging to a file."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.log = name, log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check(self) -> None:
        if not self.alive():
            raise StackError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")

    def tail(self, chars: int = 1500) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def cpu_seconds(self) -> float:
        return proc_cpu_s(self.pid)

    def stop(self) -> None:
        if self.alive():
            self._signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=STOP_TIMEOUT_S)
        # Whatever the group still holds (workers a child spawned) goes too.
        self._signal(signal.SIGKILL)
        if self.alive():
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def _signal(self, sig: int) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)


def start_api(settings: Settings, log_dir: Path, **env: str) -> tuple[Child, str]:
    """`uvicorn service.app:app_from_env` (one process, as `earshot api` runs it)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    child = Child("api", [sys.executable, "-m", "uvicorn", "service.app:app_from_env",
                          "--factory", "--host", "127.0.0.1", "--port", str(port),
                          "--log-level", "warning", "--no-access-log"],
                  child_env(settings, EARSHOT_PORT=str(port),
                            **{"EARSHOT_LOG_LEVEL": "INFO", **env}),
                  log_dir / f"api-{port}.log")

    def healthy() -> bool:
        child.check()
        try:
            return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(healthy, START_TIMEOUT_S, f"the API on {url}", interval_s=0.1)
        if env.get("EARSHOT_LOG_LEVEL", "INFO") in ("INFO", "DEBUG"):
            wait_until(lambda: WARM_MESSAGE in child.tail(1_000_000), START_TIMEOUT_S * 4,
                       "the API to warm its ML imports", interval_s=0.2)
    except BaseException:
        child.stop()
        raise
    return child, url


def start_scheduler(settings: Settings, log_dir: Path, **env: str) -> Child:
    merged = {"EARSHOT_LOG_LEVEL": "INFO", **env}
    child = Child("scheduler", [str(EARSHOT), "scheduler"], child_env(settings, **merged),
                  log_dir / f"scheduler-{int(time.time() * 1000)}.log")

    def started() -> bool:
        child.check()
        return "scheduler started" in child.tail(100_000)

    try:
        wait_until(started, START_TIMEOUT_S, "the scheduler to start", interval_s=0.1)
    except BaseException:
        child.stop()
        raise
    return child


@dataclass
class Stack:
    settings: Settings
    url: str
    api: Child
    scheduler: Child | None
    log_dir: Path

    @property
    def admin_key(self) -> str:
        assert self.settings.admin_key is not None
        return self.settings.admin_key.get_secret_value()

    def client(self, timeout_s: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout_s,
                            headers={"Authorization": f"Bearer {self.admin_key}"})

    def connect(self, **kwargs: Any) -> psycopg.Connection:
        return psycopg.connect(self.settings.resolved_database_url(), **kwargs)


@contextmanager
def running_stack(name: str, *, scheduler: bool = True, api_env: dict[str, str] | None = None,
                  scheduler_env: dict[str, str] | None = None,
                  keep_db: bool = False) -> Iterator[Stack]:
    """A fresh database `earshot_bench_<name>` with the API (and the scheduler) running on
    it; all of it is stopped (and the database dropped unless `keep_db`) on the way out."""
    log_dir = OUT_DIR / "logs" / name
    shutil.rmtree(log_dir, ignore_errors=True)  # the last run's logs only
    log_dir.mkdir(parents=True)
    settings = fresh_database(f"{BENCH_DB}_{name}")
    # The rate limit guards a real deployment against one runaway token; the benchmark's
    # load generators are that on purpose.
    api_defaults = {"EARSHOT_RATE_LIMIT_PER_S": "1000000", "EARSHOT_RATE_LIMIT_BURST": "1000000"}
    with ExitStack() as stack:
        if not keep_db:
            stack.callback(drop_database, settings)
        api, url = start_api(settings, log_dir, **{**api_defaults, **(api_env or {})})
        stack.callback(api.stop)
        sched = None
        if scheduler:
            sched = start_scheduler(settings, log_dir, **(scheduler_env or {}))
            stack.callback(sched.stop)
        yield Stack(settings, url, api, sched, log_dir)


def raise_for(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise StackError(f"{response.request.method} {response.request.url.path} -> "
                         f"{response.status_code}: {response.text[:500]}")
    return response.json() if response.content else {}


def create_machine(client: httpx.Client, name: str, kind: str = "bench") -> str:
    machine_id: str = raise_for(client.post("/v1/machines", json={"name": name,
                                                                   "kind": kind}))["id"]
    return machine_id


def create_sensor(client: httpx.Client, machine_id: str, name: str = "mic",
                  kind: str = "logmel-v1") -> tuple[str, str]:
    """(sensor id, ingest token)."""
    found = raise_for(client.post(f"/v1/machines/{machine_id}/sensors",
                                  json={"name": name, "embedding": {"kind": kind}}))
    return found["id"], found["ingest_token"]


INSERT_MACHINE = "INSERT INTO machines (name, kind) VALUES (%s, %s) RETURNING id"
INSERT_SENSOR = (
    "INSERT INTO sensors (machine_id, name, embedding_kind, dim, token_hash) "
    "VALUES (%s, %s, %s, %s, %s) RETURNING id")
BACKEND_PIDS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"


def bulk_sensors(conn: psycopg.Connection, machines: int, per_machine: int, prefix: str,
                 kind: str = "logmel-v1", dim: int = 128) -> list[tuple[str, str, str]]:
    """Machines with sensors written straight to the database (setup only: a thousand
    API round trips would cost more than the measurement), each sensor with a real ingest
    token whose digest is stored as the API stores it. Returns (machine id, sensor id,
    token) per sensor."""
    out = []
    with conn.transaction():
        for m in range(machines):
            row = conn.execute(INSERT_MACHINE, (f"{prefix}-{m}", "bench")).fetchone()
            assert row is not None
            for i in range(per_machine):
                token = security.new_token(security.INGEST_TOKEN_PREFIX)
                found = conn.execute(INSERT_SENSOR, (row[0], f"mic-{i}", kind, dim,
                                                     security.digest(token))).fetchone()
                assert found is not None
                out.append((str(row[0]), str(found[0]), token))
    return out


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backend_cpu_s(conn: psycopg.Connection) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to this database (the
    cluster's shared processes, WAL writer and checkpointer, are not included)."""
    pids = [row[0] for row in conn.execute(BACKEND_PIDS).fetchall()]
    return sum(proc_cpu_s(pid) for pid in pids)


def clip_audio(clip: Clip, data_dir: Path, offset_s: float = 0.0) -> tuple[bytes, str, float]:
    """(body, content type, seconds) of a recording as uploaded: the file as it is when
    the whole of it is wanted, else its part (from `start_s + offset_s`) as a float WAV at
    the file's own rate and channels (the server downmixes and resamples)."""
    path = data_dir / clip.path
    info = sf.info(path)
    if clip.start_s == 0.0 and clip.end_s is None and offset_s == 0.0:
        return path.read_bytes(), MEDIA[path.suffix.lower()], info.duration
    samples, sr = sf.read(path, dtype="float32", always_2d=True)
    lo = round((clip.start_s + offset_s) * sr)
    hi = None if clip.end_s is None else round(clip.end_s * sr)
    part = samples[lo:hi]
    return wav_bytes(part, sr), "audio/wav", len(part) / sr


def upload_audio(client: httpx.Client, sensor: str, body: bytes, media: str, start: datetime,
           **params: str) -> dict[str, Any]:
    return raise_for(client.post(
        f"/v1/sensors/{sensor}/audio", content=body, headers={"Content-Type": media},
        params={"start": rfc3339(start), **params}))


def wav_bytes(samples: np.ndarray, sr: int) -> bytes:
    """A float WAV of `samples` (frames x channels or mono)."""
    out = io.BytesIO()
    sf.write(out, samples, sr, format="WAV", subtype="FLOAT")
    return out.getvalue()


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def wait_job(client: httpx.Client, job_id: str, timeout_s: float = 300.0) -> dict[str, Any]:
    """Poll a training job until it succeeded or failed."""
    found: dict[str, Any] = {}

    def done() -> bool:
        nonlocal found
        found = raise_for(client.get(f"/v1/jobs/{job_id}"))
        return found["state"] in ("succeeded", "failed")

    wait_until(done, timeout_s, f"training job {job_id}", interval_s=0.1)
    return found


# --- webhook receiver -------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    webhook_id: str
    at: float  # time.monotonic() when the request arrived
    verified: bool
    payload: dict[str, Any]


@dataclass
class Receiver:
    """Answers 204 to every POST on 127.0.0.1 and records when each one arrived and
    whether its Standard Webhooks signature verified with `secret`."""

    secret: str | None = None
    arrivals: list[Arrival] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name="bench-receiver")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def snapshot(self) -> list[Arrival]:
        with self._lock:
            return list(self.arrivals)

    def _record(self, body: bytes, headers: dict[str, str]) -> None:
        at = time.monotonic()
        verified = False
        if self.secret is not None:
            try:
                Webhook(self.secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                verified = False
        arrival = Arrival(headers.get("webhook-id", ""), at, verified, json.loads(body))
        with self._lock:
            self.arrivals.append(arrival)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver._record(body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
