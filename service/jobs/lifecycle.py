"""Job state transitions: claim, advance, publish, requeue, finish; each owns its commit.

Every change of a job's status goes through here, from the API (create, cancel) and from the
worker (pipeline, sweeper, ingest). A `token` fences a write to the attempt holding the lease:
when another attempt owns the job, nothing is written and `LeaseLost` is raised.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from service import queue, webhooks
from service.db import utcnow
from service.jobs.orm import FINAL_STATUSES, Job, JobStatus, JobStep, Metric


class LeaseLost(Exception):
    """Another attempt owns the job now (or it was finished elsewhere); stop without writing."""


def claim(*, session: Session, job_id: uuid.UUID, token: str, lease_seconds: int, max_attempts: int) -> bool:
    """Take a queued job under a lease; False for a duplicate delivery or a job out of attempts."""
    result = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.QUEUED,
            Job.attempts < max_attempts,
            Job.cancel_requested.is_(False),
        )
        .values(
            status=JobStatus.RUNNING,
            attempts=Job.attempts + 1,
            lease_token=token,
            lease_expires_at=utcnow() + timedelta(seconds=lease_seconds),
            stage="starting",
        )
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def renew(*, session: Session, job_id: uuid.UUID, token: str, lease_seconds: int) -> bool:
    """Extend the lease; returns whether a cancel was requested meanwhile."""
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_token == token, Job.status == JobStatus.RUNNING)
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
        .returning(Job.cancel_requested)
    ).first()
    session.commit()
    if row is None:
        raise LeaseLost(str(job_id))
    return bool(row[0])


def advance(
    *,
    session: Session,
    job_id: uuid.UUID,
    token: str,
    stage: str,
    progress: float | None = None,
    started: bool = False,
) -> None:
    """Record a running job's stage and progress (and, once, when its work started)."""
    values: dict[str, Any] = {"stage": stage[:200]}
    if progress is not None:
        values["progress"] = progress
    if started:
        # A retried job keeps the time its first attempt started.
        values["started_at"] = func.coalesce(Job.started_at, utcnow())
    _fenced(session, job_id, token, **values)
    session.commit()


def publish(*, session: Session, job_id: uuid.UUID, queue_name: str) -> bool:
    """Send the job to its queue and stamp when; False when the broker is down (the sweeper retries)."""
    if not queue.send(queue.RUN_JOB_TASK, str(job_id), queue=queue.Queue(queue_name)):
        return False
    session.execute(update(Job).where(Job.id == job_id).values(enqueued_at=utcnow()))
    session.commit()
    return True


def publish_waiting(*, session: Session, model_id: uuid.UUID) -> int:
    """Publish every queued job of a model that finished ingest (claims make duplicates harmless)."""
    waiting = session.execute(
        select(Job.id, Job.queue).where(Job.model_id == model_id, Job.status == JobStatus.QUEUED)
    ).all()
    return publish_each(session=session, jobs=waiting)


def requeue(*, session: Session, job_id: uuid.UUID, token: str, stage: str, refund_attempt: bool) -> bool:
    """Hand a job back to the queue, releasing its lease; False when the lease moved on.

    With `refund_attempt` (the model is still being ingested) the attempt does not count, and the
    job is marked published: ingest publishes it again when the model is ready.
    """
    values: dict[str, Any] = {"status": JobStatus.QUEUED, "stage": stage, "lease_token": None}
    values.update(lease_expires_at=None, enqueued_at=utcnow() if refund_attempt else None)
    if refund_attempt:
        values["attempts"] = Job.attempts - 1
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_token == token, Job.status == JobStatus.RUNNING)
        .values(**values)
    )
    session.commit()
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish(
    *,
    session: Session,
    job_id: uuid.UUID,
    status: JobStatus,
    token: str | None = None,
    when_status: JobStatus | None = None,
    error: dict[str, Any] | None = None,
    comparison: dict[str, Any] | None = None,
    metrics: Iterable[dict[str, Any]] = (),
) -> bool:
    """End a job (succeeded, failed or cancelled), commit, then queue its webhook.

    `token` fences the write to the lease holder (LeaseLost otherwise); `when_status` makes it
    conditional on the job's current status (False when it changed meanwhile). A succeeded job
    takes its last step's artifact and the flattened metric rows in the same transaction.
    """
    assert status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
    values: dict[str, Any] = {"status": status, "error": error, "finished_at": utcnow()}
    values.update(lease_token=None, lease_expires_at=None)
    if status == JobStatus.SUCCEEDED:
        values.update(
            stage="done", progress=1.0, comparison=comparison, artifact_id=_final_artifact(session, job_id)
        )
    else:
        values["stage"] = status.value
    if status == JobStatus.CANCELLED:
        values["cancel_requested"] = True
    conditions: list[ColumnElement[bool]] = [Job.id == job_id]
    if token is not None:
        conditions.append(Job.lease_token == token)
    if when_status is not None:
        conditions.append(Job.status == when_status)
    finished = bool(session.execute(update(Job).where(*conditions).values(**values)).rowcount)  # type: ignore[attr-defined]
    if not finished:
        session.rollback()
        if token is not None:
            raise LeaseLost(str(job_id))
        return False
    session.add_all(Metric(job_id=job_id, **row) for row in metrics)
    session.commit()
    webhooks.job_finished(job_id)
    return True


def cancel(*, session: Session, job_id: uuid.UUID) -> None:
    """End a queued job at once; ask the worker running one to stop (it finishes the job)."""
    if finish(session=session, job_id=job_id, status=JobStatus.CANCELLED, when_status=JobStatus.QUEUED):
        return
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.not_in(FINAL_STATUSES))
        .values(cancel_requested=True, stage="cancelling")
    )
    session.commit()


def _final_artifact(session: Session, job_id: uuid.UUID) -> uuid.UUID | None:
    return session.scalar(
        select(JobStep.artifact_id).where(JobStep.job_id == job_id).order_by(JobStep.index.desc()).limit(1)
    )


def fence(*, session: Session, job_id: uuid.UUID, token: str) -> None:
    """Hold the lease in the caller's transaction: LeaseLost unless `token` still holds it."""
    _fenced(session, job_id, token, progress=Job.progress)


def _fenced(session: Session, job_id: uuid.UUID, token: str, **values: Any) -> None:
    """The update, only while `token` holds the lease (the caller commits)."""
    result = session.execute(update(Job).where(Job.id == job_id, Job.lease_token == token).values(**values))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise LeaseLost(str(job_id))


def publish_each(*, session: Session, jobs: Iterable[Any]) -> int:
    """Publish (id, queue) pairs; the number sent."""
    return sum(publish(session=session, job_id=job_id, queue_name=queue_name) for job_id, queue_name in jobs)
