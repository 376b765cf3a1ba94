"""Schema migrations with dbmate: plain `.sql` files in `migrations/`, applied in order."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import psycopg

from service.settings import Settings


class MigrationError(RuntimeError):
    """dbmate failed, or the database is unreachable."""


def dbmate_path() -> str:
    candidate = Path(sys.prefix) / "bin" / "dbmate"
    found = str(candidate) if candidate.exists() else shutil.which("dbmate")
    if found is None:
        raise MigrationError("dbmate not found: run `make setup`")
    return found


def _dbmate(settings: Settings, url: str, *args: str) -> str:
    cmd = [dbmate_path(), "--url", _with_sslmode(url), "--migrations-dir",
           str(settings.migrations_dir), "--schema-file",
           str(settings.migrations_dir / "schema.sql"), "--no-dump-schema", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise MigrationError(f"dbmate {' '.join(args)}: {(result.stderr or result.stdout).strip()}")
    return result.stdout


def _with_sslmode(url: str) -> str:
    if "sslmode=" in url:
        return url
    return url + ("&" if "?" in url else "?") + "sslmode=disable"


def migrate(settings: Settings, url: str | None = None) -> str:
    return _dbmate(settings, url or settings.resolved_database_url(), "up")


def dump_schema(settings: Settings, url: str, target: Path) -> None:
    cmd = [dbmate_path(), "--url", _with_sslmode(url), "--migrations-dir",
           str(settings.migrations_dir), "--schema-file", str(target), "dump"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise MigrationError(f"dbmate dump: {(result.stderr or result.stdout).strip()}")


def expected_versions(settings: Settings) -> list[str]:
    return sorted(p.name.split("_", 1)[0] for p in settings.migrations_dir.glob("*.sql")
                  if p.name[0].isdigit())


def pending_versions(conn: psycopg.Connection, settings: Settings) -> list[str]:
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    return [v for v in expected_versions(settings) if v not in applied]
