"""Job operations: create (idempotently), read, list, cancel; state changes go through lifecycle."""

from __future__ import annotations

import hashlib
import json
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service import quotas
from service.errors import Conflict, IdempotencyMismatch, NotFound
from service.jobs import documents, lifecycle
from service.jobs.capabilities import check_step_capabilities
from service.jobs.orm import FINAL_STATUSES, Job, JobStep
from service.jobs.schemas import JobCreate, JobRead
from service.jobs.validation import check_references, normalized_steps
from service.models.orm import Model, ModelStatus
from service.pagination import Page, page_of, paginate
from service.workers import capability


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
    worker_timeout_s: float = 30.0,
) -> tuple[Job, bool]:
    """Record a job and publish it after commit; returns (job, created); 429 over the job quota."""
    fingerprint = request_fingerprint(request)
    if idempotency_key:
        existing = _by_key(session, tenant_id, idempotency_key)
        if existing is not None:
            return _replay(existing, fingerprint), False
    steps, _ = normalized_steps(request)
    model = check_references(session=session, tenant_id=tenant_id, request=request, steps=steps)
    check_step_capabilities(session, steps)
    evaluation = request.evaluation.model_dump(mode="json")
    evaluation["batch_sizes"] = sorted(set(request.evaluation.batch_sizes))
    techniques = [step["technique"] for step in steps]
    capability.require(session, capability.needs_of(techniques, evaluation), timeout_s=worker_timeout_s)
    # The first step's pool; each later step moves the job to its own pool (worker/pipeline.py).
    gpu_available = capability.gpu_alive(session, timeout_s=worker_timeout_s)
    job_queue = capability.pool_for_step(techniques[0], gpu_available=gpu_available)
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
        # Otherwise ingest publishes it when the model is ready; if the broker is down, the sweeper.
        lifecycle.publish(session=session, job_id=job.id, queue_name=job.queue)
    return job, True


def get_job(*, session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """A tenant's job, or 404."""
    job = session.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise NotFound(f"job {job_id} does not exist")
    return job


def job_and_model(*, session: Session, job_id: uuid.UUID) -> tuple[Job, Model]:
    """A job with its steps and its model, for the worker that claimed it (used detached)."""
    job = session.get(Job, job_id)
    assert job is not None
    model = session.get(Model, job.model_id)
    assert model is not None
    return job, model


def list_jobs(
    *,
    session: Session,
    tenant_id: uuid.UUID,
    status: str | None,
    model_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> Page[JobRead]:
    """One page of a tenant's jobs, newest first, with optional filters."""
    statement = select(Job).where(Job.tenant_id == tenant_id)
    if status:
        statement = statement.where(Job.status == status)
    if model_id:
        statement = statement.where(Job.model_id == model_id)
    jobs = documents.documents(session, documents.job_rows(session, paginate(statement, Job, cursor, limit)))
    return Page[JobRead].model_validate(page_of(jobs, limit, lambda job: job))


def measured_jobs(*, session: Session, tenant_id: uuid.UUID, model_id: uuid.UUID) -> list[Job]:
    """A tenant's jobs of one model that have a comparison, oldest first."""
    statement = (
        select(Job).where(Job.tenant_id == tenant_id, Job.model_id == model_id).order_by(Job.created_at)
    )
    return [job for job in session.scalars(statement) if job.comparison]


def cancel_job(*, session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """Cancel a queued job at once; ask the worker to stop a running one."""
    job = get_job(session=session, tenant_id=tenant_id, job_id=job_id)
    if job.status in FINAL_STATUSES:
        raise Conflict(f"job {job_id} is already {job.status}", job_status=job.status)
    lifecycle.cancel(session=session, job_id=job_id)
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
