"""Alembic environment: metadata from the ORM, URL from the service settings."""

from __future__ import annotations

import logging

from alembic import context

from service.db import get_engine
from service.orm import Base
from service.settings import get_settings

# Quiet alembic's own info lines without installing a root handler: inside `modelpress serve` a
# basicConfig handler here printed every later log line a second time.
logging.getLogger("alembic").setLevel(logging.WARNING)
config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.attributes.get("database_url") or get_settings().resolved_database_url


def run_offline() -> None:
    """Emit SQL without a connection."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate over a live connection; SQLite needs batch mode for ALTERs."""
    engine = get_engine(_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
