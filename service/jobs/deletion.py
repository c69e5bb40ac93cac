"""Deleting finished jobs, one on request or all past the retention period, with their own artifacts."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.artifacts import service as artifacts_service
from service.artifacts.orm import Artifact
from service.errors import Conflict
from service.jobs.orm import FINAL_STATUSES, Job, Metric
from service.jobs.service import get_job


def delete_job(*, session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> None:
    """Delete a finished job, its steps, metrics and the artifacts it made; 409 while it runs."""
    job = get_job(session=session, tenant_id=tenant_id, job_id=job_id)
    if job.status not in FINAL_STATUSES:
        raise Conflict(f"job {job_id} is {job.status}; cancel it first", job_status=job.status)
    _remove(session, job)
    session.commit()


def purge_finished(*, session: Session, finished_before: datetime) -> int:
    """Delete every job that ended before the cutoff (the retention period); returns how many."""
    expired = session.scalars(
        select(Job).where(Job.status.in_(FINAL_STATUSES), Job.finished_at < finished_before)
    ).all()
    for job in expired:
        _remove(session, job)
    session.commit()
    return len(expired)


def _remove(session: Session, job: Job) -> None:
    made = set(session.scalars(select(Artifact.id).where(Artifact.job_id == job.id)))
    made |= {job.artifact_id, *(step.artifact_id for step in job.steps)} - {None}  # type: ignore[arg-type]
    session.execute(delete(Metric).where(Metric.job_id == job.id))
    session.delete(job)
    session.flush()
    artifacts_service.release(session=session, artifact_ids=made)
