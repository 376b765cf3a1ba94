"""The migrated schema must match the committed dump: catches a migration edited after
the fact, or a schema change made outside migrations."""

from __future__ import annotations

import re
from pathlib import Path

from service.migrate import dump_schema
from service.settings import Settings


def _normalise(text: str) -> str:
    text = re.sub(r"^--.*$", "", text, flags=re.MULTILINE)
    text = re.sub(r"^\\(un)?restrict .*$", "", text, flags=re.MULTILINE)
    return "\n".join(line for line in text.splitlines() if line.strip())


def test_migrated_schema_matches_committed_dump(settings: Settings, database_url: str,
                                                tmp_path: Path) -> None:
    target = tmp_path / "schema.sql"
    dump_schema(settings, database_url, target)
    committed = (settings.migrations_dir / "schema.sql").read_text()
    assert _normalise(target.read_text()) == _normalise(committed), (
        "schema drift: run `make schema` after changing migrations and commit schema.sql")
