"""Engine, sessions and the declarative base shared by every domain's ORM module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from sqlalchemy import DateTime, MetaData, Uuid, create_engine, make_url
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from service import transactions
from service.settings import get_settings

# Stable constraint names make Alembic migrations reproducible on Postgres and SQLite.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
# Connections beyond the admitted requests: /metrics, /readyz and key look-ups are not limited.
POOL_HEADROOM = 4
SessionMode = Literal["read", "request", "background"]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with naming conventions."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True), uuid.UUID: Uuid()}


class IdMixin:
    """A UUID primary key and a creation time."""

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


@lru_cache
def get_engine(url: str | None = None) -> Engine:
    """One engine per database URL, created on first use."""
    settings = get_settings()
    url = url or settings.resolved_database_url
    # Every admitted request can hold a connection while it waits for a thread: a pool smaller
    # than the admission limit deadlocks into pool timeouts under load.
    pool = {
        "pool_size": settings.max_concurrent_requests + POOL_HEADROOM,
        "max_overflow": 0,
        "pool_timeout": 5,
    }
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **pool)
        transactions.install(engine, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        return engine
    # pre_ping turns a restarted Postgres into a reconnect instead of an error on the next request.
    return create_engine(url, pool_pre_ping=True, **pool)


@lru_cache
def _session_factory(url: str | None, mode: SessionMode) -> sessionmaker[Session]:
    engine = get_engine(url)
    if mode == "read":
        engine = transactions.reader(engine)
    elif mode == "request":
        engine = transactions.writer(engine, wait_s=get_settings().request_lock_wait_s)
    return sessionmaker(bind=engine, expire_on_commit=False)


def new_session(*, mode: SessionMode = "background") -> Session:
    """A session on the configured database; the caller closes it.

    `read`: never writes (SQLite: deferred transaction; Postgres: autocommit), `request`: writes
    and gives up on the SQLite write lock after `request_lock_wait_s`, `background`: writes and
    waits for the lock up to `background_lock_wait_s` (workers, CLI).
    """
    return _session_factory(None, mode)()


def get_db() -> Iterator[Session]:
    """A writing session for one request (see service.deps.request_session for the usual one)."""
    with new_session(mode="request") as session:
        yield session
