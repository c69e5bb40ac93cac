"""A step's outcome and the job's final result, recorded through the jobs domain under the lease."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from engine.contract import TechniqueError
from service.failures import QuotaExceeded
from service.finite import finite_json, non_finite_warning
from service.jobs import steps as job_steps
from service.jobs.orm import JobStatus
from service.storage import get_store
from worker import records
from worker.joblog import JobLog
from worker.lease import Lease

if TYPE_CHECKING:
    from service.jobs.orm import Job, JobStep


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
        size = output.stat().st_size
        try:  # before the bytes go to the store; checked again, under the tenant's lock, when recorded
            records.call(
                job_steps.check_room, tenant_id=job.tenant_id, size_bytes=size, quota_bytes=quota_bytes
            )
        except job_steps.OverQuota as over:
            _refuse_over_quota(lease, job, step, over, quota_bytes, started)
    stored = get_store().put_file(output) if output is not None else None
    metrics = warnings = None
    if outcome is not None:
        metrics, replaced = finite_json(outcome.get("metrics"))
        warnings = list(outcome.get("warnings") or []) + ([non_finite_warning(replaced)] if replaced else [])
        warnings = warnings or outcome.get("warnings")
    try:
        artifact_id = records.call(
            job_steps.record_step,
            tenant_id=job.tenant_id,
            job_id=job.id,
            token=lease.token,
            step_id=step.id,
            started=started,
            stored=stored,
            filename=f"{job.id}-step{step.index}-{step.technique.replace('.', '-')}{_suffix(output)}",
            quota_bytes=quota_bytes,
            metrics=metrics,
            warnings=warnings,
            error=error,
        )
    except job_steps.OverQuota as over:
        _refuse_over_quota(lease, job, step, over, quota_bytes or 0, started)
    if artifact_id is not None:
        step.artifact_id = artifact_id


def _refuse_over_quota(
    lease: Lease, job: Job, step: JobStep, over: job_steps.OverQuota, quota_bytes: int, started: Any
) -> NoReturn:
    failed = TechniqueError(
        QuotaExceeded,
        f"step {step.index} ({step.technique}) made a {over.size_bytes}-byte model, but the tenant stores"
        f" {over.used_bytes} of its {quota_bytes} bytes; delete models or jobs' artifacts to make room",
        step=step.index,
        technique=step.technique,
        quota_bytes=quota_bytes,
        used_bytes=over.used_bytes,
        artifact_bytes=over.size_bytes,
    )
    record_step(lease, job, step, started=started, error=failed.document)
    raise failed


def record_success(lease: Lease, comparison: dict[str, Any], *, journal: JobLog | None = None) -> None:
    """Mark the job succeeded with its comparison and flattened metric rows, under the lease."""
    comparison, replaced = finite_json(comparison)  # JSON (and Postgres) has no NaN
    if replaced:
        verdict = comparison.setdefault("verdict", {})
        verdict["warnings"] = [*(verdict.get("warnings") or []), non_finite_warning(replaced)]
    if journal is not None:  # first: the lines are fenced by the lease that finishing gives up
        journal.flush()
    lease.finish(JobStatus.SUCCEEDED, comparison=comparison, metrics=flatten_metrics(comparison))


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


def _suffix(output: Path | None) -> str:
    """The artifact's file extension: the step's output format (.onnx, or .pt2 for export.torch)."""
    return output.suffix if output is not None and output.suffix else ".onnx"
