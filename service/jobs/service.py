"""Job operations: create (idempotently), read, list, cancel."""

from __future__ import annotations

import hashlib
import json
import uuid

from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import queue, quotas, webhooks
from service.db import utcnow
from service.errors import Conflict, IdempotencyMismatch, NotFound
from service.jobs.orm import FINAL_STATUSES, Job, JobStatus, JobStep
from service.jobs.schemas import JobCreate
from service.jobs.validation import check_references, normalized_steps
from service.models.orm import ModelStatus


def request_fingerprint(request: JobCreate) -> str:
    """SHA-256 of the canonical request body, to tell a replay from a different request."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def create_job(
    *,
    session: Session,
    tenant_id: uuid.UUID,
    request: JobCreate,
    idempotency_key: str | None,
    active_jobs_limit: int | None = None,
) -> tuple[Job, bool]:
    """Record a job and publish it after commit; returns (job, created); 429 over the job quota."""
    fingerprint = request_fingerprint(request)
    if idempotency_key:
        existing = _by_key(session, tenant_id, idempotency_key)
        if existing is not None:
            return _replay(existing, fingerprint), False
    steps, job_queue = normalized_steps(request)
    model = check_references(session=session, tenant_id=tenant_id, request=request, steps=steps)
    evaluation = request.evaluation.model_dump(mode="json")
    evaluation["batch_sizes"] = sorted(set(request.evaluation.batch_sizes))
    if active_jobs_limit is not None:
        quotas.check_active_jobs(session=session, tenant_id=tenant_id, limit=active_jobs_limit)
    job = Job(
        tenant_id=tenant_id,
        model_id=request.model_id,
        queue=job_queue.value,
        evaluation=evaluation,
        idempotency_key=idempotency_key,
        request_hash=fingerprint,
        callback_url=str(request.callback_url) if request.callback_url else None,
        steps=[JobStep(index=i, technique=s["technique"], params=s["params"]) for i, s in enumerate(steps)],
    )
    session.add(job)
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request with the same key won the insert: answer with its job.
        session.rollback()
        existing = _by_key(session, tenant_id, idempotency_key or "")
        if existing is None:
            raise
        return _replay(existing, fingerprint), False
    if model.status == ModelStatus.READY:
        publish(session=session, job=job)  # otherwise ingest publishes it when the model is ready
    return job, True


def publish(*, session: Session, job: Job) -> None:
    """Send the job to its queue and remember when; if the broker is down the sweeper retries."""
    if queue.send(queue.RUN_JOB_TASK, str(job.id), queue=job.queue):
        session.execute(update(Job).where(Job.id == job.id).values(enqueued_at=utcnow()))
        session.commit()


def get_job(*, session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """A tenant's job, or 404."""
    job = session.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise NotFound(f"job {job_id} does not exist")
    return job


def list_jobs_query(*, tenant_id: uuid.UUID, status: str | None, model_id: uuid.UUID | None) -> Select[Job]:
    """The select statement for a tenant's jobs with optional filters."""
    statement = select(Job).where(Job.tenant_id == tenant_id)
    if status:
        statement = statement.where(Job.status == status)
    if model_id:
        statement = statement.where(Job.model_id == model_id)
    return statement


def cancel_job(*, session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """Cancel a queued job at once; ask the worker to stop a running one."""
    job = get_job(session=session, tenant_id=tenant_id, job_id=job_id)
    if job.status in FINAL_STATUSES:
        raise Conflict(f"job {job_id} is already {job.status}", job_status=job.status)
    now = utcnow()
    cancelled = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(status=JobStatus.CANCELLED, stage="cancelled", finished_at=now, cancel_requested=True)
    )
    if cancelled.rowcount == 0:  # type: ignore[attr-defined]
        session.execute(update(Job).where(Job.id == job_id).values(cancel_requested=True, stage="cancelling"))
    session.commit()
    if cancelled.rowcount:  # type: ignore[attr-defined]
        webhooks.job_finished(job_id)
    session.refresh(job)
    return job


def _by_key(session: Session, tenant_id: uuid.UUID, key: str) -> Job | None:
    return session.scalar(select(Job).where(Job.tenant_id == tenant_id, Job.idempotency_key == key))


def _replay(job: Job, fingerprint: str) -> Job:
    if job.request_hash != fingerprint:
        raise IdempotencyMismatch(
            "this Idempotency-Key was used with a different request body; use a new key", job_id=str(job.id)
        )
    return job
