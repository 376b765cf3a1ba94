"""Test databases on the real embedded TimescaleDB cluster: one migrated template per
session, one clone per test (CREATE DATABASE … TEMPLATE), dropped afterwards."""

from __future__ import annotations

import uuid

import psycopg

from service import pgcluster
from service.migrate import migrate
from service.settings import Settings

TEMPLATE = "earshot_test_template"


def admin_url(settings: Settings) -> str:
    return settings.resolved_database_url().rsplit("/", 1)[0] + "/postgres"


def database_url(settings: Settings, name: str) -> str:
    return settings.resolved_database_url().rsplit("/", 1)[0] + f"/{name}"


def build_template(settings: Settings) -> None:
    pgcluster.start(settings)
    with psycopg.connect(admin_url(settings), autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {TEMPLATE} WITH is_template false allow_connections true"
                     ) if _exists(conn, TEMPLATE) else None
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {TEMPLATE}")
    migrate(settings, database_url(settings, TEMPLATE))
    with psycopg.connect(admin_url(settings), autocommit=True) as conn:
        # No connections to the template, or TimescaleDB's background workers would hold
        # it open and every clone would fail with "source database is being accessed".
        conn.execute(f"ALTER DATABASE {TEMPLATE} WITH is_template true allow_connections false")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s", (TEMPLATE,))


def _exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() \
        is not None


def clone(settings: Settings) -> str:
    name = f"earshot_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(settings), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    return name


def drop(settings: Settings, name: str) -> None:
    with psycopg.connect(admin_url(settings), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
