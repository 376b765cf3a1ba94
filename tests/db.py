"""Test databases on the real embedded TimescaleDB cluster: one migrated template per
session, one clone per test (CREATE DATABASE … TEMPLATE), dropped afterwards."""

from __future__ import annotations

import hashlib
import uuid

import psycopg

from service import pgcluster
from service.migrate import migrate
from service.settings import Settings

TEMPLATE_PREFIX = "earshot_tpl_"


def admin_url(settings: Settings) -> str:
    return settings.resolved_database_url().rsplit("/", 1)[0] + "/postgres"


def database_url(settings: Settings, name: str) -> str:
    return settings.resolved_database_url().rsplit("/", 1)[0] + f"/{name}"


def template_name(settings: Settings) -> str:
    """One template per set of migration files: concurrent test sessions share it, and a
    changed migration gets a new template instead of pulling one from under a session."""
    digest = hashlib.sha256()
    for path in sorted(settings.migrations_dir.glob("*.sql")):
        if path.name != "schema.sql":
            digest.update(path.name.encode() + path.read_bytes())
    return TEMPLATE_PREFIX + digest.hexdigest()[:16]


def build_template(settings: Settings) -> str:
    pgcluster.start(settings)
    name = template_name(settings)
    with psycopg.connect(admin_url(settings), autocommit=True) as conn:
        if _exists(conn, name):
            return name
        building = f"{name}_{uuid.uuid4().hex[:8]}"
        conn.execute(f"CREATE DATABASE {building}")
    migrate(settings, database_url(settings, building))
    with psycopg.connect(admin_url(settings), autocommit=True) as conn:
        # No connections to the template, or TimescaleDB's background workers would hold
        # it open and every clone would fail with "source database is being accessed".
        conn.execute(f"ALTER DATABASE {building} WITH allow_connections false")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s", (building,))
        try:
            conn.execute(f"ALTER DATABASE {building} RENAME TO {name}")
        except psycopg.errors.DuplicateDatabase:  # a concurrent session built it first
            conn.execute(f"DROP DATABASE {building} WITH (FORCE)")
            return name
        conn.execute(f"ALTER DATABASE {name} WITH is_template true")
    return name


def _exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() \
        is not None


def clone(settings: Settings) -> str:
    name = f"earshot_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(settings), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template_name(settings)}")
    return name


def drop(settings: Settings, name: str) -> None:
    with psycopg.connect(admin_url(settings), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
