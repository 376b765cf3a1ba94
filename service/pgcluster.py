"""The embedded, project-owned PostgreSQL 15 + TimescaleDB cluster under `$EARSHOT_DATA_DIR/pg`.

`initdb` refuses to run as root, so as root every server command runs as the `postgres`
user; the data directory is owned by that user. The cluster listens on 127.0.0.1 only and
requires a password (generated once, stored mode 0600 next to the cluster).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import stat
import subprocess
from pathlib import Path

from service.settings import Settings

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SERVER_SETTINGS = {
    "shared_preload_libraries": "'timescaledb'",
    "timescaledb.telemetry_level": "off",
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "'512MB'",
    "synchronous_commit": "on",
    "log_min_messages": "warning",
    "timescaledb.max_background_workers": "8",
    "max_worker_processes": "24",
}


class ClusterError(RuntimeError):
    """The embedded cluster could not be created, started or stopped."""


def _as_owner(cmd: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def _run(cmd: list[str], what: str) -> str:
    result = subprocess.run(_as_owner(cmd), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ClusterError(f"{what} failed: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def _chown_for_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _password(settings: Settings) -> str:
    path = settings.data_dir / "db-password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _make_reachable(path: Path) -> None:
    """Let the `postgres` user traverse to the cluster directory: a checkout under a
    private directory (mode 0700, as `mktemp -d` makes) would otherwise stop initdb.
    Adds only the search bit (o+x) to ancestors that lack it; nothing becomes readable."""
    if os.geteuid() != 0:
        return
    for ancestor in path.resolve().parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)


def _initdb(settings: Settings) -> None:
    pg_dir = settings.pg_dir
    pg_dir.mkdir(parents=True, exist_ok=True)
    _make_reachable(pg_dir)
    pg_dir.chmod(0o700)
    _chown_for_postgres(pg_dir)
    pwfile = settings.data_dir / ".initdb-pw"
    pwfile.write_text(_password(settings) + "\n")
    pwfile.chmod(0o600)
    _chown_for_postgres(pwfile)
    try:
        _run([str(PG_BIN / "initdb"), "-D", str(pg_dir), "-U", "earshot", "--pwfile", str(pwfile),
              "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8",
              "--locale=C.UTF-8"], "initdb")
    finally:
        pwfile.unlink(missing_ok=True)
    conf = "\n".join(f"{key} = {value}" for key, value in SERVER_SETTINGS.items())
    with (pg_dir / "postgresql.conf").open("a") as handle:
        handle.write(f"\n# Earshot\n{conf}\n")


def is_initialised(settings: Settings) -> bool:
    return (settings.pg_dir / "PG_VERSION").exists()


def is_running(settings: Settings) -> bool:
    if not is_initialised(settings):
        return False
    status_cmd = [str(PG_BIN / "pg_ctl"), "-D", str(settings.pg_dir), "status"]
    result = subprocess.run(_as_owner(status_cmd), capture_output=True, check=False)
    return result.returncode == 0


def start(settings: Settings) -> None:
    """Create (first time) and start the cluster; a running cluster is left alone."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not is_initialised(settings):
        _initdb(settings)
    if is_running(settings):
        return
    if port_in_use(settings.db_port):
        raise ClusterError(
            f"port {settings.db_port} on 127.0.0.1 is taken by another program: "
            "stop it or set EARSHOT_DB_PORT to a free port"
        )
    socket_dir = settings.pg_dir / "run"
    socket_dir.mkdir(exist_ok=True)
    _chown_for_postgres(socket_dir)
    _run([str(PG_BIN / "pg_ctl"), "-D", str(settings.pg_dir), "-w", "-t", "60",
          "-l", str(settings.pg_dir / "server.log"),
          "-o", f"-p {settings.db_port} -k {socket_dir}", "start"], "pg_ctl start")
    _ensure_database(settings)


def _ensure_database(settings: Settings) -> None:
    import psycopg

    url = settings.resolved_database_url().rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (settings.db_name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{settings.db_name}"')


def stop(settings: Settings) -> None:
    if is_running(settings):
        _run([str(PG_BIN / "pg_ctl"), "-D", str(settings.pg_dir), "-m", "fast", "-w", "stop"],
             "pg_ctl stop")


def status(settings: Settings) -> str:
    if not is_initialised(settings):
        return f"not initialised ({settings.pg_dir})"
    state = "running" if is_running(settings) else "stopped"
    return f"{state}: {settings.pg_dir} on 127.0.0.1:{settings.db_port}"
