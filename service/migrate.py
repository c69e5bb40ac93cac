"""Bring the database schema to the latest revision (`python -m service.migrate`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

ROOT = Path(__file__).resolve().parents[1]


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic config that needs no alembic.ini on the path."""
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    if database_url:
        config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str | None = None) -> None:
    """Run every pending migration."""
    command.upgrade(alembic_config(database_url), "head")


if __name__ == "__main__":
    upgrade()
