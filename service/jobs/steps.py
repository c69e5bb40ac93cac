"""A step's outcome: its artifact and row in one transaction, written only under the job's lease."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service import quotas
from service.artifacts import service as artifacts_service
from service.db import utcnow
from service.jobs.lifecycle import LeaseLost
from service.jobs.orm import Job, JobStatus, JobStep
from service.storage.base import StoredObject


class OverQuota(Exception):
    """The step's model does not fit in what is left of the tenant's storage quota."""

    def __init__(self, used_bytes: int, size_bytes: int) -> None:
        super().__init__(f"{used_bytes} + {size_bytes} bytes")
        self.used_bytes = used_bytes
        self.size_bytes = size_bytes


def of_job(*, session: Session, job_id: uuid.UUID) -> list[JobStep]:
    """A job's steps in order, as recorded so far."""
    return list(session.scalars(select(JobStep).where(JobStep.job_id == job_id).order_by(JobStep.index)))


def check_room(*, session: Session, tenant_id: uuid.UUID, size_bytes: int, quota_bytes: int) -> None:
    """OverQuota when `size_bytes` more would take the tenant past its quota (a read; nothing locked)."""
    used = quotas.stored_bytes(session=session, tenant_id=tenant_id)
    session.rollback()
    if used + size_bytes > quota_bytes:
        raise OverQuota(used, size_bytes)


def record_step(
    *,
    session: Session,
    tenant_id: uuid.UUID,
    job_id: uuid.UUID,
    token: str,
    step_id: uuid.UUID,
    started: datetime,
    stored: StoredObject | None = None,
    filename: str = "",
    quota_bytes: int | None = None,
    metrics: dict[str, Any] | None = None,
    warnings: list[str] | None = None,
    error: dict[str, Any] | None = None,
) -> uuid.UUID | None:
    """Record a step as finished: succeeded with its `stored` model (named `filename`), or failed.

    Returns the new artifact's id. Fenced: a stale attempt writes nothing (LeaseLost). With
    `quota_bytes`, the room is checked again under the tenant's lock (a concurrent step may have
    used it meanwhile): OverQuota, and nothing is written.
    """
    touched = session.execute(
        update(Job).where(Job.id == job_id, Job.lease_token == token).values(progress=Job.progress)
    )
    if not touched.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        raise LeaseLost(str(job_id))
    values: dict[str, Any] = {"started_at": started, "finished_at": utcnow()}
    artifact_id = None
    if stored is not None:
        if quota_bytes is not None:
            quotas.lock_tenant(session=session, tenant_id=tenant_id)
            used = quotas.stored_bytes(session=session, tenant_id=tenant_id)
            if used + stored.size_bytes > quota_bytes:
                session.rollback()
                raise OverQuota(used, stored.size_bytes)
        artifact_id = artifacts_service.add_output(
            session=session, tenant_id=tenant_id, stored=stored, filename=filename, job_id=job_id
        ).id
        values.update(status=JobStatus.SUCCEEDED, artifact_id=artifact_id)
    if metrics is not None or warnings is not None:
        values.update(metrics=metrics, warnings=warnings)
    if error is not None:
        values.update(status=JobStatus.FAILED, error=error)
    session.execute(update(JobStep).where(JobStep.id == step_id).values(**values))
    session.commit()
    return artifact_id
