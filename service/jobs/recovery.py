"""The sweeper's passes over jobs: expired leases, cancels that raced a claim, lost messages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.jobs import lifecycle
from service.jobs.orm import Job, JobStatus
from service.models.orm import Model, ModelStatus

LOST_WORKER_STAGE = "requeued after its worker was lost"


def expire_leases(
    *, session: Session, now: datetime, max_attempts: int, lost_error: Callable[[int], dict[str, Any]]
) -> dict[str, int]:
    """Running jobs whose heartbeat stopped: back to the queue, or failed after the last attempt."""
    counts = {"requeued": 0, "failed": 0}
    expired = session.execute(
        select(Job.id, Job.attempts, Job.lease_token).where(
            Job.status == JobStatus.RUNNING, Job.lease_expires_at < now
        )
    ).all()
    session.commit()
    for job_id, attempts, token in expired:
        if token is None:
            continue  # a running job always holds a lease token; nothing to recover here
        try:
            if attempts >= max_attempts:
                lifecycle.finish(
                    session=session,
                    job_id=job_id,
                    status=JobStatus.FAILED,
                    token=token,
                    error=lost_error(attempts),
                )
                counts["failed"] += 1
            elif lifecycle.requeue(
                session=session, job_id=job_id, token=token, stage=LOST_WORKER_STAGE, refund_attempt=False
            ):
                counts["requeued"] += 1
        except lifecycle.LeaseLost:
            continue  # its worker came back and finished it meanwhile
    return counts


def cancel_requested(*, session: Session) -> int:
    """Queued jobs whose cancel arrived while a worker briefly held them."""
    waiting = session.scalars(
        select(Job.id).where(Job.status == JobStatus.QUEUED, Job.cancel_requested.is_(True))
    ).all()
    session.commit()
    return sum(
        lifecycle.finish(
            session=session, job_id=job_id, status=JobStatus.CANCELLED, when_status=JobStatus.QUEUED
        )
        for job_id in waiting
    )


def republish_lost(*, session: Session, stale_before: datetime) -> int:
    """Publish queued jobs never published, or published before `stale_before` (the broker lost them)."""
    lost = session.execute(
        select(Job.id, Job.queue)
        .join(Model, Model.id == Job.model_id)
        .where(
            Job.status == JobStatus.QUEUED,
            Job.cancel_requested.is_(False),
            Model.status != ModelStatus.PENDING,
            or_(Job.enqueued_at.is_(None), Job.enqueued_at < stale_before),
        )
    ).all()
    session.commit()
    return lifecycle.publish_each(session=session, jobs=lost)
