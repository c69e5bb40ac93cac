"""Per-tenant quotas: bytes kept in the store and jobs queued or running at once."""

from __future__ import annotations

import uuid

from sqlalchemy import CompoundSelect, func, select, union
from sqlalchemy.orm import Session

from service.artifacts.orm import Artifact
from service.errors import StorageQuotaExceeded, TooManyJobs
from service.jobs.orm import Job, JobStatus
from service.models.orm import Model
from service.tenants.orm import Tenant

# Storage frees only when the tenant deletes something; jobs free as soon as one finishes.
STORAGE_RETRY_AFTER_S = 3600
JOBS_RETRY_AFTER_S = 30
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


def stored_bytes(*, session: Session, tenant_id: uuid.UUID) -> int:
    """Sum of the tenant's artifacts (uploads, ONNX forms, datasets and every job's step models),
    leaving out the upload and ONNX forms of deleted models."""
    deleted = (Model.tenant_id == tenant_id) & Model.deleted_at.is_not(None)
    released: CompoundSelect[tuple[uuid.UUID | None]] = union(
        select(Model.upload_artifact_id).where(deleted),
        select(Model.onnx_artifact_id).where(deleted, Model.onnx_artifact_id.is_not(None)),
        select(Model.normalized_artifact_id).where(deleted, Model.normalized_artifact_id.is_not(None)),
    )
    total = session.scalar(
        select(func.coalesce(func.sum(Artifact.size_bytes), 0)).where(
            Artifact.tenant_id == tenant_id, Artifact.id.not_in(released)
        )
    )
    return int(total or 0)


def upload_allowance(*, session: Session, tenant_id: uuid.UUID, quota_bytes: int) -> int:
    """Bytes the tenant may still store; 413 at once when nothing is left."""
    used = stored_bytes(session=session, tenant_id=tenant_id)
    session.commit()  # end the read transaction: the upload that follows may stream for minutes
    if used >= quota_bytes:
        raise storage_exceeded(used, quota_bytes)
    return quota_bytes - used


def storage_exceeded(used: int, quota_bytes: int) -> StorageQuotaExceeded:
    """The problem for an upload that does not fit in what is left of the quota."""
    return StorageQuotaExceeded(
        f"the tenant stores {used} of its {quota_bytes} bytes; delete models to make room",
        headers={"Retry-After": str(STORAGE_RETRY_AFTER_S)},
        quota_bytes=quota_bytes,
        used_bytes=used,
    )


def lock_tenant(*, session: Session, tenant_id: uuid.UUID) -> None:
    """Hold the tenant's row (Postgres) so quota checks of the same tenant run one at a time."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())


def check_active_jobs(*, session: Session, tenant_id: uuid.UUID, limit: int) -> None:
    """429 when the tenant already has `limit` jobs queued or running.

    The tenant row is locked first (Postgres), so concurrent submissions are counted one at a
    time and the limit is exact; the lock ends with the caller's commit.
    """
    lock_tenant(session=session, tenant_id=tenant_id)
    active = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.tenant_id == tenant_id, Job.status.in_(ACTIVE_STATUSES))
    )
    if (active or 0) >= limit:
        raise TooManyJobs(
            f"the tenant has {active} jobs queued or running, the most allowed at once is {limit};"
            " retry when one finishes",
            headers={"Retry-After": str(JOBS_RETRY_AFTER_S)},
            limit=limit,
            active=active,
        )
