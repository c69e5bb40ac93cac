"""The periodic sweeper: recover jobs whose worker died and messages the broker lost."""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service import queue
from service.artifacts.service import collect_garbage
from service.db import new_session, utcnow
from service.failures import MaxAttempts
from service.jobs.deletion import purge_finished
from service.jobs.orm import Job, JobStatus
from service.models.orm import Model, ModelStatus
from service.settings import Settings
from service.storage import get_store
from service.webhooks import job_finished as notify_finished

log = logging.getLogger("modelpress.sweeper")
_last_collection = 0.0  # monotonic time of this process's last store garbage collection


def sweep(settings: Settings) -> dict[str, int]:
    """One pass; returns counts of what it did (for logs and tests)."""
    now = utcnow()
    with new_session() as session:
        counts = _expire_leases(session, settings, now)
        counts["cancelled"] = _cancel_requested(session, now)
        counts["published"] = _republish_jobs(session, settings, now)
        counts["ingests"] = _republish_ingests(session, settings, now)
        counts.update(_clean_up(session, settings, now))
    if any(counts.values()):
        log.info("sweep %s", counts)
    return counts


def _expire_leases(session: Session, settings: Settings, now: datetime) -> dict[str, int]:
    """Running jobs whose heartbeat stopped: back to the queue, or failed after the last attempt."""
    counts = {"requeued": 0, "failed": 0}
    finished: list[uuid.UUID] = []
    expired = session.scalars(select(Job).where(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now))
    for job in expired:
        if job.attempts >= settings.max_attempts:
            job.status, job.stage, job.finished_at = JobStatus.FAILED, "failed", now
            job.error = MaxAttempts(
                f"the job's worker was lost on each of {job.attempts} attempts", attempts=job.attempts
            ).to_document()
            counts["failed"] += 1
            finished.append(job.id)
        else:
            job.status, job.stage, job.enqueued_at = (
                JobStatus.QUEUED,
                "requeued after its worker was lost",
                None,
            )
            counts["requeued"] += 1
        job.lease_token, job.lease_expires_at = None, None
    session.commit()
    for job_id in finished:
        notify_finished(job_id)
    return counts


def _cancel_requested(session: Session, now: datetime) -> int:
    """Queued jobs whose cancel arrived while a worker briefly held them."""
    jobs = session.scalars(
        select(Job).where(Job.status == JobStatus.QUEUED, Job.cancel_requested.is_(True))
    ).all()
    for job in jobs:
        job.status, job.stage, job.finished_at = JobStatus.CANCELLED, "cancelled", now
    session.commit()
    for job in jobs:
        notify_finished(job.id)
    return len(jobs)


def _republish_jobs(session: Session, settings: Settings, now: datetime) -> int:
    """Queued jobs never published, or published long ago (the broker may have lost them)."""
    stale = now - timedelta(seconds=settings.requeue_after_s)
    lost = session.scalars(
        select(Job)
        .join(Model, Model.id == Job.model_id)
        .where(
            Job.status == JobStatus.QUEUED,
            Job.cancel_requested.is_(False),
            Model.status != ModelStatus.PENDING,
            or_(Job.enqueued_at.is_(None), Job.enqueued_at < stale),
        )
    ).all()
    published = 0
    for job in lost:
        if queue.send(queue.RUN_JOB_TASK, str(job.id), queue=job.queue):
            job.enqueued_at = utcnow()
            published += 1
    session.commit()
    return published


def _republish_ingests(session: Session, settings: Settings, now: datetime) -> int:
    """Pending models whose ingest was never delivered, or whose worker died during it."""
    lost_publish = now - timedelta(seconds=settings.requeue_after_s)
    stuck = now - timedelta(seconds=settings.ingest_timeout_s + 60)
    pending = session.scalars(
        select(Model).where(
            Model.status == ModelStatus.PENDING,
            or_(
                Model.ingest_started_at.is_(None) & (Model.created_at < lost_publish),
                Model.ingest_started_at < stuck,
            ),
        )
    ).all()
    published = 0
    for model in pending:
        if model.ingest_attempts >= settings.max_attempts:
            model.status = ModelStatus.REJECTED
            model.error = MaxAttempts(
                f"ingest did not finish in {model.ingest_attempts} attempts"
            ).to_document()
        elif queue.send(queue.INGEST_TASK, str(model.id)):
            published += 1
    session.commit()
    return published


def _clean_up(session: Session, settings: Settings, now: datetime) -> dict[str, int]:
    """Jobs past the retention period, then (now and then) stored files no row names any more."""
    global _last_collection
    counts = {"purged": 0, "collected": 0}
    if settings.job_retention_days > 0:
        cutoff = now - timedelta(days=settings.job_retention_days)
        counts["purged"] = purge_finished(session=session, finished_before=cutoff)
    if time.monotonic() - _last_collection >= settings.store_gc_interval_s:
        _last_collection = time.monotonic()
        counts["collected"] = collect_garbage(
            session=session, store=get_store(), grace_s=settings.store_gc_grace_s
        )
    return counts
