"""The embedded cluster as `earshot db start|stop|status` runs it, in a checkout under a
private (0700) directory as CI's fresh clones are."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import psycopg
import pytest

from service import pgcluster
from service.settings import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_cluster_starts_in_a_private_checkout_and_keeps_data_across_restart() -> None:
    root = Path(tempfile.mkdtemp(prefix="earshot-private-"))  # mode 0700
    settings = Settings(data_dir=root / "checkout" / ".data", db_port=_free_port())
    try:
        assert pgcluster.status(settings).startswith("not initialised")
        pgcluster.start(settings)
        assert pgcluster.status(settings).startswith("running")
        with psycopg.connect(settings.resolved_database_url(), autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
            preload = conn.execute("SHOW shared_preload_libraries").fetchone()
        assert preload == ("timescaledb",)
        pgcluster.stop(settings)
        assert pgcluster.status(settings).startswith("stopped")
        pgcluster.start(settings)
        with psycopg.connect(settings.resolved_database_url()) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (42,)
        assert (settings.data_dir / "db-password").stat().st_mode & 0o077 == 0
    finally:
        pgcluster.stop(settings)
        shutil.rmtree(root, ignore_errors=True)


def test_a_taken_port_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        settings = Settings(data_dir=tmp_path / ".data", db_port=blocker.getsockname()[1])
        settings.pg_dir.mkdir(parents=True)
        (settings.pg_dir / "PG_VERSION").write_text("15\n")  # looks initialised, not running
        with pytest.raises(pgcluster.ClusterError, match="EARSHOT_DB_PORT"):
            pgcluster.start(settings)
