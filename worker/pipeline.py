"""Run one attempt of a job: claim it, run each step in the sandbox, evaluate, commit fenced."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from service.catalog import referenced_dataset_ids
from service.db import new_session, utcnow
from service.jobs.orm import Job, JobStatus, JobStep
from service.models.orm import Model, ModelStatus
from service.settings import Settings
from service.webhooks import job_finished as notify_finished
from worker import files
from worker.evaluation import evaluate_job
from worker.lease import Lease, LeaseLost
from worker.problems import JobFailed, problem
from worker.results import record_step, record_success
from worker.sandbox import SandboxFailure, SandboxLimits, open_box, run_sandboxed

log = logging.getLogger("modelpress.pipeline")


def run_job(job_id: uuid.UUID, settings: Settings) -> None:
    """Run the job if this delivery can claim it; every write is fenced by the lease."""
    lease = Lease(job_id, settings.lease_seconds)
    if not lease.claim(settings.max_attempts):
        log.info("job.skip %s: not claimable (already taken, finished or out of attempts)", job_id)
        return
    lease.start_heartbeat()
    workdir = files.job_workdir(job_id)
    try:
        _run_claimed(job_id, lease, settings, workdir)
    except LeaseLost:
        log.warning("job.lease_lost %s: another attempt owns it; nothing written", job_id)
    except SandboxFailure as failure:
        if failure.slug == "cancelled":
            _finish(lease, JobStatus.CANCELLED, stage="cancelled")
        else:
            _finish(
                lease, JobStatus.FAILED, error=problem(failure.slug, failure.detail, **failure.extensions)
            )
    except JobFailed as failed:
        _finish(lease, JobStatus.FAILED, error=failed.document)
    except (OperationalError, InterfaceError) as exc:
        # The database went away, not the job: write nothing, the lease lapses and the sweeper retries.
        log.warning("job.database_lost %s: %s", job_id, exc)
    except Exception as exc:
        log.exception("job.crashed %s", job_id)
        # The exception's text (paths, library messages) stays in the log above.
        detail = f"the job stopped on an unexpected worker error ({type(exc).__name__})"
        _finish(lease, JobStatus.FAILED, error=problem("internal-error", detail))
    finally:
        lease.stop_heartbeat()
        files.remove_workdir(workdir)


def _run_claimed(job_id: uuid.UUID, lease: Lease, settings: Settings, workdir: Path) -> None:
    # Rows are read in a short session and used detached: no transaction stays open during long work.
    with new_session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        model = session.get(Model, job.model_id)
        assert model is not None
    if model.status == ModelStatus.PENDING and not job.cancel_requested:
        # Ingest publishes the job again when it finishes; this attempt does not count.
        lease.write(
            status=JobStatus.QUEUED,
            attempts=Job.attempts - 1,
            lease_token=None,
            lease_expires_at=None,
            stage="waiting for model ingest",
            enqueued_at=utcnow(),
        )
        return
    if job.cancel_requested:
        raise SandboxFailure("cancelled", "the job was cancelled before it started")
    if model.status == ModelStatus.REJECTED:
        raise JobFailed(
            problem("model-rejected", "the model was rejected at ingest", model_error=model.error)
        )
    assert model.onnx_artifact_id is not None
    lease.write(started_at=job.started_at or utcnow(), stage="preparing")
    original = files.fetch_artifact(model.onnx_artifact_id, workdir / "original.onnx")
    steps = list(job.steps)
    signature = model.signature or {}
    # Techniques get the graph normalized at ingest; the upload's graph stays the baseline.
    current = original
    if model.normalized_artifact_id is not None:
        current = files.fetch_artifact(model.normalized_artifact_id, workdir / "normalized.onnx")
    for step in steps:
        previous, current = current, _run_step(lease, settings, job, step, current, signature, workdir)
        if previous != original:
            previous.unlink(missing_ok=True)  # stored as the earlier step's artifact; no need for a copy
    comparison = evaluate_job(lease, settings, job, original, current, signature, workdir)
    record_success(lease, job, steps[-1], comparison)


def _run_step(
    lease: Lease,
    settings: Settings,
    job: Job,
    step: JobStep,
    current: Path,
    signature: dict[str, Any],
    workdir: Path,
) -> Path:
    """Run one step (or reuse its artifact from an earlier attempt) and return its output model."""
    output = workdir / f"step{step.index}.onnx"
    if step.status == JobStatus.SUCCEEDED and step.artifact_id is not None:
        return files.fetch_artifact(step.artifact_id, output)
    total = len(job.steps) + 1
    stage = f"step {step.index + 1}/{len(job.steps)}: {step.technique}"
    lease.write(stage=stage, progress=step.index / total)
    datasets = files.fetch_datasets(referenced_dataset_ids(step.params), workdir / "datasets")
    started = utcnow()
    with open_box() as box:
        try:
            outcome = run_sandboxed(
                "worker.entries:run_technique",
                {
                    "technique": step.technique,
                    "model_path": box.admit(current, current.name),
                    "output_path": box.output(output.name),
                    "params": step.params,
                    "datasets": {key: box.admit(Path(path), f"{key}.npz") for key, path in datasets.items()},
                    "signature": signature,
                    "threads": settings.bench_threads,
                },
                box=box,
                limits=SandboxLimits(
                    settings.sandbox_memory_bytes, settings.step_time_limit_s, settings.bench_threads
                ),
                on_progress=_progress_writer(lease, step.index, total, stage),
                should_cancel=lambda: lease.cancel_requested,
            )
        except SandboxFailure as failure:
            if failure.slug == "cancelled":
                raise
            detail = f"step {step.index} ({step.technique}) failed: {failure.detail}"
            document = problem(
                failure.slug, detail, step=step.index, technique=step.technique, **failure.extensions
            )
            record_step(lease, job, step, started=started, error=document)
            raise JobFailed(document) from None
        files.collect_model(Path(box.output(output.name)), output)
    record_step(
        lease,
        job,
        step,
        started=started,
        output=output,
        outcome=outcome,
        quota_bytes=settings.quota_storage_bytes,
    )
    return output


def _progress_writer(lease: Lease, index: int, total: int, stage: str) -> Any:
    last = [0.0]

    def write(fraction: float, message: str) -> None:
        # Throttled: a chatty technique must not turn into a database write per batch.
        if time.monotonic() - last[0] < 1.0 and fraction < 1.0:
            return
        last[0] = time.monotonic()
        lease.write(progress=(index + fraction) / total, stage=f"{stage}: {message}"[:200])

    return write


def _finish(
    lease: Lease, status: JobStatus, *, stage: str | None = None, error: dict[str, Any] | None = None
) -> None:
    try:
        lease.write(
            status=status,
            stage=stage or status.value,
            error=error,
            finished_at=utcnow(),
            lease_token=None,
            lease_expires_at=None,
        )
    except LeaseLost:
        log.warning("job.lease_lost %s while recording %s", lease.job_id, status)
        return
    notify_finished(lease.job_id)
