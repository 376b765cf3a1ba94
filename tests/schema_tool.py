"""`make schema`: rewrite migrations/schema.sql from a freshly migrated database."""

from __future__ import annotations

from service.migrate import dump_schema
from service.settings import Settings
from tests import db


def main() -> None:
    settings = Settings()
    db.build_template(settings)
    name = db.clone(settings)
    try:
        dump_schema(settings, db.database_url(settings, name),
                    settings.migrations_dir / "schema.sql")
    finally:
        db.drop(settings, name)
    print(f"wrote {settings.migrations_dir / 'schema.sql'}")


if __name__ == "__main__":
    main()
