"""Embedded SQLite: reads never wait for the write lock; writers wait for it only so long."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from service import transactions
from service.db import get_engine
from service.transactions import WriteLockTimeout


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """The embedded engine on a fresh file with one table and one row."""
    engine = get_engine(f"sqlite:///{tmp_path / 'embedded.db'}")
    with Session(engine) as session:
        session.execute(text("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER)"))
        session.execute(text("INSERT INTO counters VALUES ('polls', 1)"))
        session.commit()
    yield engine
    engine.dispose()


@pytest.fixture
def held_write_lock(sqlite_engine: Engine) -> Iterator[None]:
    """Another writer (as the worker would be) inside an uncommitted write transaction."""
    writer = Session(sqlite_engine)
    writer.execute(text("UPDATE counters SET value = 2 WHERE name = 'polls'"))
    yield
    writer.rollback()
    writer.close()


def test_a_read_does_not_wait_for_a_held_write_lock(sqlite_engine: Engine, held_write_lock: None) -> None:
    started = time.monotonic()
    with Session(transactions.reader(sqlite_engine)) as reader:
        value = reader.scalar(text("SELECT value FROM counters WHERE name = 'polls'"))
    assert value == 1  # the last committed state: the writer's change is not visible yet
    assert time.monotonic() - started < 1.0  # before: BEGIN IMMEDIATE waited 30 s for the lock


def test_reads_in_threads_run_beside_a_writer(sqlite_engine: Engine, held_write_lock: None) -> None:
    durations: list[float] = []

    def poll() -> None:
        started = time.monotonic()
        with Session(transactions.reader(sqlite_engine)) as reader:
            reader.scalar(text("SELECT count(*) FROM counters"))
        durations.append(time.monotonic() - started)

    threads = [threading.Thread(target=poll) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(durations) == 8 and max(durations) < 1.0


def test_a_request_writer_gives_up_after_its_wait(sqlite_engine: Engine, held_write_lock: None) -> None:
    started = time.monotonic()
    with pytest.raises(WriteLockTimeout), Session(transactions.writer(sqlite_engine, wait_s=0.3)) as session:
        session.execute(text("UPDATE counters SET value = 3"))
    waited = time.monotonic() - started
    assert 0.3 <= waited < 3.0  # a bounded wait, then a 503 for the request


def test_a_writer_gets_the_lock_once_it_is_released(sqlite_engine: Engine) -> None:
    holder = Session(sqlite_engine)
    holder.execute(text("UPDATE counters SET value = 2"))
    releaser = threading.Timer(0.3, holder.commit)
    releaser.start()
    with Session(transactions.writer(sqlite_engine, wait_s=5.0)) as session:
        session.execute(text("UPDATE counters SET value = value + 1"))
        session.commit()
        assert session.scalar(text("SELECT value FROM counters")) == 3
    releaser.join()
    holder.close()
