"""Register, beat, forget and count workers; a row not seen for the timeout is a dead worker."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from service.db import utcnow
from service.workers.orm import Worker, WorkerPool


def pool_for(queues: list[str]) -> str:
    """A worker that consumes only the `gpu` queue is a GPU worker; anything else serves the CPU pool."""
    return WorkerPool.GPU if queues and set(queues) == {"gpu"} else WorkerPool.CPU


def register(
    session: Session,
    *,
    hostname: str,
    pid: int,
    queues: list[str],
    hardware: dict[str, Any] | None = None,
    capabilities: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Add this worker's row, with the hardware it probed and what its libraries can run; return its id."""
    found = hardware or {}
    worker = Worker(
        hostname=hostname,
        pid=pid,
        queues=",".join(queues),
        pool=pool_for(queues),
        hardware=found,
        gpu_name=found.get("gpu_name"),
        tensorrt_version=found.get("tensorrt_version"),
        capabilities=capabilities,
    )
    session.add(worker)
    session.commit()
    return worker.id


def beat(session: Session, worker_id: uuid.UUID) -> bool:
    """Mark the worker seen now; False when its row is gone (pruned while it was stalled)."""
    result = session.execute(update(Worker).where(Worker.id == worker_id).values(last_seen=utcnow()))
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def forget(session: Session, *, worker_id: uuid.UUID | None = None, hostname: str = "", pid: int = 0) -> int:
    """Delete a worker's row, by id or by the host and process id it registered with."""
    query = delete(Worker)
    if worker_id is not None:
        query = query.where(Worker.id == worker_id)
    else:
        query = query.where(Worker.hostname == hostname, Worker.pid == pid)
    removed = session.execute(query).rowcount  # type: ignore[attr-defined]
    session.commit()
    return int(removed)


def live_count(session: Session, *, timeout_s: float) -> int:
    """How many workers were seen within the timeout."""
    since = utcnow() - timedelta(seconds=timeout_s)
    return int(session.scalar(select(func.count()).select_from(Worker).where(Worker.last_seen >= since)) or 0)


def live(session: Session, *, timeout_s: float) -> list[Worker]:
    """The workers seen within the timeout, oldest first."""
    since = utcnow() - timedelta(seconds=timeout_s)
    return list(session.scalars(select(Worker).where(Worker.last_seen >= since).order_by(Worker.started_at)))


def everyone(session: Session) -> list[Worker]:
    """Every row, live or not yet pruned (the operator's view)."""
    return list(session.scalars(select(Worker).order_by(Worker.started_at)))


def prune(session: Session, *, timeout_s: float) -> int:
    """Delete the rows of workers not seen within the timeout; returns how many."""
    since = utcnow() - timedelta(seconds=timeout_s)
    removed = session.execute(delete(Worker).where(Worker.last_seen < since)).rowcount  # type: ignore[attr-defined]
    session.commit()
    return int(removed)


def live_capabilities(
    session: Session, *, timeout_s: float, pool: str = WorkerPool.CPU
) -> list[dict[str, Any]]:
    """The capabilities of each live worker of a pool that reported them."""
    since = utcnow() - timedelta(seconds=timeout_s)
    rows = session.scalars(
        select(Worker.capabilities).where(Worker.last_seen >= since, Worker.pool == pool)
    ).all()
    return [row for row in rows if row is not None]
