"""How transactions begin: reads never take SQLite's write lock; writers wait for it, boundedly.

SQLite allows one writer at a time. A transaction that only reads starts deferred (plain BEGIN):
under WAL it reads a snapshot and never waits for, nor blocks, a writer. A transaction that may
write starts with BEGIN IMMEDIATE, which takes the write lock up front (a deferred transaction
that reads and then writes fails outright when another writer committed in between). The lock
is asked for in short attempts (the busy timeout) until a budget is spent: a few hundred
milliseconds for a request, which then answers 503 + Retry-After, longer for workers and the CLI.
On Postgres, reading sessions run in autocommit: no BEGIN and ROLLBACK round trips.
"""

from __future__ import annotations

import random
import sqlite3
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from service.settings import get_settings

READ_ONLY = "modelpress_read_only"
LOCK_WAIT_S = "modelpress_lock_wait_s"


class WriteLockTimeout(OperationalError):
    """SQLite's write lock stayed taken for the whole wait budget."""


def install(engine: Engine, *, busy_timeout_ms: int) -> None:
    """Set the pragmas on every new SQLite connection and take over how transactions begin."""

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own implicit BEGIN is switched off: _begin decides the kind of transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers and one writer at the same time
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    event.listen(engine, "connect", pragmas)
    event.listen(engine, "begin", _begin)


def reader(engine: Engine) -> Engine:
    """The engine for sessions that never write."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{READ_ONLY: True})
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def writer(engine: Engine, *, wait_s: float) -> Engine:
    """The engine for writing sessions that give up on SQLite's write lock after wait_s."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(**{LOCK_WAIT_S: wait_s})
    return engine


def _begin(connection: Any) -> None:
    options = connection.get_execution_options()
    if options.get(READ_ONLY):
        connection.exec_driver_sql("BEGIN")
        return
    wait_s = options.get(LOCK_WAIT_S, get_settings().background_lock_wait_s)
    begin_immediate(connection.connection.dbapi_connection, wait_s=wait_s)


def begin_immediate(dbapi_connection: sqlite3.Connection, *, wait_s: float) -> None:
    """BEGIN IMMEDIATE, tried until wait_s is spent; each try waits up to the busy timeout."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
            if time.monotonic() >= deadline:
                raise WriteLockTimeout("BEGIN IMMEDIATE", None, exc) from exc
        # Some busy answers come back at once (no busy handler); jitter spreads the retries.
        time.sleep(random.uniform(0.002, 0.01))
