"""Which queued or running jobs still need a model, a dataset or an artifact (a delete waits for them)."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.catalog import referenced_dataset_ids, referenced_model_ids
from service.errors import Conflict
from service.jobs.orm import FINAL_STATUSES, Job, JobStep


def active_jobs(session: Session, tenant_id: uuid.UUID) -> list[Job]:
    """The tenant's jobs that are not finished."""
    return list(
        session.scalars(select(Job).where(Job.tenant_id == tenant_id, Job.status.not_in(FINAL_STATUSES)))
    )


def datasets_of(job: Job) -> set[str]:
    """Every dataset id a job names, in its evaluation or in any step's params."""
    named = {value for step in job.steps for value in referenced_dataset_ids(step.params)}
    if job.evaluation.get("dataset_id"):
        named.add(str(job.evaluation["dataset_id"]))
    return named


def models_of(job: Job) -> set[str]:
    """Every uploaded model id a job's steps name besides its own model (students, teachers)."""
    return {value for step in job.steps for value in referenced_model_ids(step.params)}


def refuse_while_used(
    *,
    session: Session,
    tenant_id: uuid.UUID,
    what: str,
    model_id: uuid.UUID | None = None,
    dataset_id: uuid.UUID | None = None,
    artifact_id: uuid.UUID | None = None,
) -> None:
    """409 naming the unfinished jobs that use the object; nothing when none does."""
    users = [
        job
        for job in active_jobs(session, tenant_id)
        if job.model_id == model_id
        or (model_id is not None and str(model_id) in models_of(job))
        or (dataset_id is not None and str(dataset_id) in datasets_of(job))
        or (artifact_id is not None and _outputs(job, artifact_id))
    ]
    if users:
        ids = [str(job.id) for job in users]
        raise Conflict(
            f"{what} is used by {len(ids)} job(s) still queued or running ({', '.join(ids[:5])}); "
            "cancel them or wait until they end",
            jobs=ids,
        )


def _outputs(job: Job, artifact_id: uuid.UUID) -> bool:
    return job.artifact_id == artifact_id or any(step.artifact_id == artifact_id for step in job.steps)


def detach_finished(*, session: Session, artifact_id: uuid.UUID) -> None:
    """Forget an artifact in finished jobs and their steps; their reports stay."""
    for job in session.scalars(select(Job).where(Job.artifact_id == artifact_id)):
        job.artifact_id = None
    steps = select(JobStep).where(JobStep.artifact_id == artifact_id)
    for step in session.scalars(steps):
        step.artifact_id = None
    session.flush()
