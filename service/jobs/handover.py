"""Moving a job between pools: between steps a job goes to the queue of the pool its next part needs."""

from __future__ import annotations

import uuid

from sqlalchemy import update
from sqlalchemy.orm import Session

from service.jobs import lifecycle
from service.jobs.orm import Job, JobStatus


def hand_over(*, session: Session, job_id: uuid.UUID, token: str, queue_name: str, stage: str) -> bool:
    """Release the lease, requeue on `queue_name` without counting the attempt, and publish there.

    False when the lease moved on. Finished steps keep their artifacts, so the next pool's worker
    reuses them and starts at the first step not yet done.
    """
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_token == token, Job.status == JobStatus.RUNNING)
        .values(
            status=JobStatus.QUEUED,
            queue=queue_name,
            stage=stage,
            lease_token=None,
            lease_expires_at=None,
            enqueued_at=None,
            attempts=Job.attempts - 1,
        )
    )
    session.commit()
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    # Not published (broker down): enqueued_at stays None and the sweeper publishes it.
    lifecycle.publish(session=session, job_id=job_id, queue_name=queue_name)
    return True
