"""Fenced writes of a step's outcome and of the job's final result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from service import quotas
from service.artifacts.orm import Artifact, ArtifactKind
from service.db import new_session, utcnow
from service.failures import QuotaExceeded
from service.finite import finite_json, non_finite_warning
from service.jobs.orm import Job, JobStatus, JobStep, Metric
from service.storage import get_store
from service.webhooks import job_finished as notify_finished
from worker.joblog import JobLog
from worker.lease import Lease
from worker.sandbox.contract import TechniqueError


def record_step(
    lease: Lease,
    job: Job,
    step: JobStep,
    *,
    started: Any,
    output: Path | None = None,
    outcome: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    quota_bytes: int | None = None,
) -> None:
    """Store a step's artifact (if any) and its row in one transaction, only under the lease.

    With `quota_bytes`, an artifact that would take the tenant past its storage quota is not
    stored: the step fails with `quota-exceeded` (a TechniqueError) and earlier steps' artifacts stay.
    """
    if output is not None and quota_bytes is not None:
        with new_session() as session:
            _refuse_over_quota(lease, job, step, session, output, quota_bytes, started)
    stored = get_store().put_file(output) if output is not None else None
    with new_session() as session:
        lease.write_in(session, progress=Job.progress)  # fence first: a stale attempt writes nothing
        values: dict[str, Any] = {"started_at": started, "finished_at": utcnow()}
        if stored is not None and output is not None:
            if quota_bytes is not None:
                # Again under the tenant's lock: a concurrent step may have used the room meanwhile.
                quotas.lock_tenant(session=session, tenant_id=job.tenant_id)
                _refuse_over_quota(lease, job, step, session, output, quota_bytes, started)
            artifact = Artifact(
                tenant_id=job.tenant_id,
                kind=ArtifactKind.MODEL,
                sha256=stored.sha256,
                size_bytes=stored.size_bytes,
                media_type="application/octet-stream",
                job_id=job.id,
                filename=f"{job.id}-step{step.index}-{step.technique.replace('.', '-')}.onnx",
            )
            session.add(artifact)
            session.flush()
            values.update(status=JobStatus.SUCCEEDED, artifact_id=artifact.id)
        if outcome is not None:
            metrics, replaced = finite_json(outcome.get("metrics"))
            warnings = list(outcome.get("warnings") or []) + (
                [non_finite_warning(replaced)] if replaced else []
            )
            values.update(metrics=metrics, warnings=warnings or outcome.get("warnings"))
        if error is not None:
            values.update(status=JobStatus.FAILED, error=error)
        session.execute(update(JobStep).where(JobStep.id == step.id).values(**values))
        session.commit()
        if "artifact_id" in values:
            step.artifact_id = values["artifact_id"]


def _refuse_over_quota(
    lease: Lease, job: Job, step: JobStep, session: Session, output: Path, quota_bytes: int, started: Any
) -> None:
    size = output.stat().st_size
    used = quotas.stored_bytes(session=session, tenant_id=job.tenant_id)
    if used + size <= quota_bytes:
        return
    session.rollback()
    failed = TechniqueError(
        QuotaExceeded,
        f"step {step.index} ({step.technique}) made a {size}-byte model, but the tenant stores {used} of"
        f" its {quota_bytes} bytes; delete models or jobs' artifacts to make room",
        step=step.index,
        technique=step.technique,
        quota_bytes=quota_bytes,
        used_bytes=used,
        artifact_bytes=size,
    )
    record_step(lease, job, step, started=started, error=failed.document)
    raise failed


def record_success(
    lease: Lease, job: Job, last_step: JobStep, comparison: dict[str, Any], *, journal: JobLog | None = None
) -> None:
    """Mark the job succeeded with its comparison, metric rows and last log lines, under the lease."""
    comparison, replaced = finite_json(comparison)  # JSON (and Postgres) has no NaN
    if replaced:
        verdict = comparison.setdefault("verdict", {})
        verdict["warnings"] = [*(verdict.get("warnings") or []), non_finite_warning(replaced)]
    with new_session() as session:
        last = session.get(JobStep, last_step.id)
        assert last is not None
        if journal is not None:  # first: its fence needs the lease the write below gives up
            journal.info("job succeeded", artifact_id=last.artifact_id)
            journal.write_in(session)
        lease.write_in(
            session,
            status=JobStatus.SUCCEEDED,
            stage="done",
            progress=1.0,
            comparison=comparison,
            artifact_id=last.artifact_id,
            finished_at=utcnow(),
            lease_token=None,
            lease_expires_at=None,
        )
        session.add_all(Metric(job_id=job.id, **row) for row in flatten_metrics(comparison))
        session.commit()
    notify_finished(job.id)


def flatten_metrics(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    """Numeric figures of the baseline and candidate as rows (subject, name, batch_size, value)."""
    rows: list[dict[str, Any]] = []
    for subject in ("baseline", "candidate"):
        side = comparison.get(subject) or {}
        for name in (
            "size_bytes",
            "compressed_size_bytes",
            "parameters",
            "nonzero_parameters",
            "peak_memory_bytes",
        ):
            if isinstance(side.get(name), int | float):
                rows.append(
                    {"subject": subject, "name": name, "batch_size": None, "value": float(side[name])}
                )
        for batch, percentiles in (side.get("latency_ms") or {}).items():
            for key, value in percentiles.items():
                rows.append(
                    {
                        "subject": subject,
                        "name": f"latency_ms_{key}",
                        "batch_size": int(batch),
                        "value": value,
                    }
                )
        for batch, value in (side.get("throughput_per_s") or {}).items():
            rows.append(
                {"subject": subject, "name": "throughput_per_s", "batch_size": int(batch), "value": value}
            )
        for metric, value in (side.get("accuracy") or {}).items():
            if value is not None:
                rows.append(
                    {"subject": subject, "name": f"accuracy_{metric}", "batch_size": None, "value": value}
                )
    return [row for row in rows if isinstance(row["value"], int | float)]
