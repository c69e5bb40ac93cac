"""Job documents read with exactly the columns clients see: no ORM objects, no unused columns.

Polling `GET /v1/jobs/{id}` is the API's hottest path; building the document from two narrow
Core queries costs about half of loading the ORM objects with their relationship.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from service.errors import NotFound
from service.jobs.orm import Job, JobStep
from service.jobs.schemas import JobRead, StepRead

JOB_COLUMNS = [getattr(Job, name) for name in JobRead.model_fields if name != "steps"]
STEP_COLUMNS = [JobStep.job_id, *(getattr(JobStep, name) for name in StepRead.model_fields)]
# Built once: constructing a select costs more than running it against a warm database.
JOB_BY_ID = select(*JOB_COLUMNS).where(Job.id == bindparam("job_id"), Job.tenant_id == bindparam("tenant_id"))
STEPS_OF_JOBS = (
    select(*STEP_COLUMNS)
    .where(JobStep.job_id.in_(bindparam("job_ids", expanding=True)))
    .order_by(JobStep.index)
)


def job_document(*, session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> JobRead:
    """A tenant's job as clients see it, or 404."""
    # Core on the session's connection: the ORM's execution layer has nothing to add here.
    parameters = {"job_id": job_id, "tenant_id": tenant_id}
    row = session.connection().execute(JOB_BY_ID, parameters).mappings().first()
    if row is None:
        raise NotFound(f"job {job_id} does not exist")
    return documents(session, [row])[0]


def job_rows(session: Session, statement: Select[Any]) -> list[Any]:
    """The job columns of a filtered, ordered, limited select of jobs (see service.list_jobs)."""
    return list(session.execute(statement.with_only_columns(*JOB_COLUMNS)).mappings())


def documents(session: Session, rows: list[Any]) -> list[JobRead]:
    """Job documents for job rows, their steps read in one query."""
    steps: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    if rows:
        ids = [row["id"] for row in rows]
        for step in session.connection().execute(STEPS_OF_JOBS, {"job_ids": ids}).mappings():
            steps[step["job_id"]].append(dict(step))
    return [JobRead.model_validate({**row, "steps": steps[row["id"]]}) for row in rows]
