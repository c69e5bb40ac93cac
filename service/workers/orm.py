"""One row per running worker process; the GPU-pool work adds hardware columns to the same table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, utcnow


class WorkerPool:
    """Which pool a worker serves."""

    CPU = "cpu"
    GPU = "gpu"


class Worker(Base):
    """A Celery worker process that registered and keeps beating."""

    __tablename__ = "workers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    queues: Mapped[str] = mapped_column(String(255))  # comma-separated, as given to `celery -Q`
    pool: Mapped[str] = mapped_column(String(10))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # What worker/hardware.py probed at start: CPU model and int8 flags, cores, memory, GPU, versions.
    hardware: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Copied out of `hardware`: the two facts that decide whether a GPU step can run anywhere.
    gpu_name: Mapped[str | None] = mapped_column(String(255), default=None)
    tensorrt_version: Mapped[str | None] = mapped_column(String(40), default=None)
    # What this worker's libraries can run, e.g. {"weight_only_algorithms": ["rtn", "hqq", "gptq"]};
    # None for a worker of an older release, which reported nothing.
    capabilities: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
