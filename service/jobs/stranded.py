"""Queued jobs whose pool died: fail those no live worker can run, move GPU-preferring ones to `cpu`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.catalog import Queue
from service.errors import NoCapableWorker
from service.jobs import lifecycle
from service.jobs.orm import Job, JobStatus
from service.workers import capability, registry


def resolve(*, session: Session, stale_before: datetime, timeout_s: float) -> dict[str, int]:
    """Jobs queued on `gpu` since before `stale_before` with no live GPU worker to take them."""
    counts = {"no_capable_worker": 0, "moved_to_cpu": 0}
    waiting = list(
        session.scalars(
            select(Job).where(
                Job.status == JobStatus.QUEUED,
                Job.queue == Queue.GPU.value,
                Job.cancel_requested.is_(False),
                Job.enqueued_at < stale_before,
            )
        )
    )
    if not waiting:
        session.commit()
        return counts
    live = registry.live(session, timeout_s=timeout_s)
    session.commit()
    for job in waiting:
        remaining = [step.technique for step in job.steps if step.artifact_id is None]
        needs = capability.needs_of(remaining, job.evaluation or {})
        lacking = capability.missing(live, needs)
        if needs.gpu and lacking is not None:
            problem = NoCapableWorker(f"the job waited for a GPU worker that is gone: {lacking}")
            if lifecycle.finish(
                session=session,
                job_id=job.id,
                status=JobStatus.FAILED,
                when_status=JobStatus.QUEUED,
                error=problem.to_document(),
            ):
                counts["no_capable_worker"] += 1
        elif not needs.gpu and not any(capability.is_gpu_worker(w) for w in live):
            # Only preferred the GPU (a training step): the CPU pool runs it instead of nobody.
            counts["moved_to_cpu"] += move_to_cpu(session, job)
    return counts


def move_to_cpu(session: Session, job: Job) -> int:
    """Requeue a queued job on `cpu` and publish it there."""
    job.queue = Queue.CPU.value
    session.commit()
    return int(lifecycle.publish(session=session, job_id=job.id, queue_name=Queue.CPU.value))
