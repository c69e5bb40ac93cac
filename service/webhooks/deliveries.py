"""What a webhook delivery reads (target, secret, frozen body) and the coarse record it leaves."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.jobs.orm import Job
from service.jobs.schemas import JobRead
from service.tenants.orm import Tenant


@dataclass(frozen=True)
class Target:
    """Where a finished job's document goes, signed with its tenant's secret."""

    url: str
    secret: str
    event: str
    body: str


def target(*, session: Session, job_id: uuid.UUID) -> Target | None:
    """The delivery of a job's document; None when the job is gone or has no callback URL."""
    job = session.get(Job, job_id)
    if job is None or not job.callback_url:
        return None
    tenant = session.get(Tenant, job.tenant_id)
    assert tenant is not None
    body = JobRead.model_validate(job).model_dump_json()
    return Target(job.callback_url, tenant.webhook_secret, f"job.{job.status}", body)


def record(*, session: Session, job_id: uuid.UUID, attempt: dict[str, Any]) -> None:
    """Append one attempt's coarse outcome to the job's delivery log."""
    # Row lock: attempts of one delivery are sequential, but a re-triggered delivery may overlap.
    job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
    if job is not None:
        job.webhook_deliveries = [*(job.webhook_deliveries or []), attempt]
        session.commit()
