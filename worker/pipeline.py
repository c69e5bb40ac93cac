"""Run one attempt of a job: claim it, run each step in the sandbox, evaluate, commit fenced."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import InterfaceError, OperationalError

from engine.contract import JOB_MODEL, TechniqueError
from service.catalog import CATALOG, Queue, referenced_dataset_ids, referenced_model_ids
from service.db import utcnow
from service.errors import Problem
from service.failures import Cancelled, ModelRejected
from service.jobs import service as jobs_service
from service.jobs.orm import JobStatus
from service.models.orm import ModelStatus
from service.settings import Settings
from service.workers import capability
from worker import files, records
from worker.evaluation_step import evaluate_job
from worker.joblog import JobLog
from worker.lease import Lease, LeaseLost
from worker.results import record_step, record_success
from worker.sandbox import SandboxFailure, SandboxLimits, open_box, run_sandboxed

if TYPE_CHECKING:
    from service.jobs.orm import Job, JobStep

log = logging.getLogger("modelpress.pipeline")


def run_job(job_id: uuid.UUID, settings: Settings) -> None:
    """Run the job if this delivery can claim it; every write is fenced by the lease."""
    lease = Lease(job_id, settings.lease_seconds)
    if not lease.claim(settings.max_attempts):
        log.info("job.skip %s: not claimable (already taken, finished or out of attempts)", job_id)
        return
    lease.start_heartbeat()
    workdir = files.job_workdir(job_id)
    journal = JobLog(lease)
    try:
        _run_claimed(job_id, lease, settings, workdir, journal)
    except LeaseLost:
        log.warning("job.lease_lost %s: another attempt owns it; nothing written", job_id)
    except TechniqueError as failure:
        if isinstance(failure.problem, Cancelled):
            _finish(lease, journal, JobStatus.CANCELLED)
        else:
            _finish(lease, journal, JobStatus.FAILED, error=failure.document)
    except (OperationalError, InterfaceError) as exc:
        # The database went away, not the job: write nothing, the lease lapses and the sweeper retries.
        log.warning("job.database_lost %s: %s", job_id, exc)
    except Exception as exc:
        log.exception("job.crashed %s", job_id)
        # The exception's text (paths, library messages) stays in the log above.
        detail = f"the job stopped on an unexpected worker error ({type(exc).__name__})"
        _finish(lease, journal, JobStatus.FAILED, error=Problem(detail).to_document())
    finally:
        lease.stop_heartbeat()
        files.remove_workdir(workdir)


def _run_claimed(job_id: uuid.UUID, lease: Lease, settings: Settings, workdir: Path, journal: JobLog) -> None:
    # Rows are read in a short session and used detached: no transaction stays open during long work.
    job, model = records.call(jobs_service.job_and_model, job_id=job_id)
    journal.info(f"attempt {job.attempts} started", attempt=job.attempts, queue=job.queue)
    if model.status == ModelStatus.PENDING and not job.cancel_requested:
        # Ingest publishes the job again when it finishes; this attempt does not count.
        journal.info("waiting for the model's ingest; the job runs when it ends")
        journal.flush()
        lease.requeue("waiting for model ingest")
        return
    if job.cancel_requested:
        raise TechniqueError(Cancelled, "the job was cancelled before it started")
    if model.status == ModelStatus.REJECTED:
        raise TechniqueError(ModelRejected, "the model was rejected at ingest", model_error=model.error)
    assert model.onnx_artifact_id is not None
    gpu_available = records.call(capability.gpu_alive, timeout_s=settings.worker_timeout_s)
    if _moved(lease, journal, job, _next_pool(job, gpu_available)):
        return
    lease.advance("preparing", started=True)
    original = files.fetch_artifact(model.onnx_artifact_id, workdir / "original.onnx")
    steps = list(job.steps)
    signature = model.signature or {}
    # Techniques get the graph normalized at ingest; the upload's graph stays the baseline.
    current = original
    if model.normalized_artifact_id is not None:
        current = files.fetch_artifact(model.normalized_artifact_id, workdir / "normalized.onnx")
    engine_input: Path | None = None
    job_model = current
    # Every step's ONNX output stays until the evaluation has measured it (per-step attribution).
    measured: list[tuple[JobStep, Path]] = []
    for step in steps:
        if not _done(step) and _moved(lease, journal, job, _next_pool(job, gpu_available, step.index)):
            return
        previous = current
        produced = _run_step(lease, settings, job, step, (current, job_model), signature, workdir, journal)
        if not CATALOG[step.technique].writes_onnx:
            continue  # a final format (a .pt2): the evaluation compares the ONNX model it was made from
        current = produced
        if step.technique in capability.TENSORRT_TECHNIQUES:
            engine_input = previous  # kept: the comparison measures the ONNX the engine was built from
        else:
            measured.append((step, current))
    evaluation = job.evaluation or {}
    engine: Path | None = None
    if engine_input is not None:
        # The comparison's CPU figures are of the ONNX the engine came from; the engine itself runs on
        # its GPU only, where a cuda evaluation times it (the comparison's gpu.engine).
        engine, current = current, engine_input
        if evaluation.get("device") != "cuda":
            journal.warning(
                "the engine itself is timed only with evaluation.device 'cuda'; this comparison measures"
                " the ONNX it was built from"
            )
    if _moved(lease, journal, job, capability.pool_for_evaluation(evaluation)):
        return
    journal.info(
        "evaluating the original against the compressed model",
        metric=evaluation.get("metric"),
        dataset_id=evaluation.get("dataset_id"),
        batch_sizes=evaluation.get("batch_sizes"),
    )
    journal.flush()
    comparison = evaluate_job(lease, settings, job, original, current, measured, signature, workdir, engine)
    _log_result(journal, comparison)
    journal.info("job succeeded", artifact_id=steps[-1].artifact_id)
    record_success(lease, comparison, journal=journal)


def _done(step: JobStep) -> bool:
    """A step an earlier attempt (or another pool's worker) finished: its artifact is reused."""
    return step.status == JobStatus.SUCCEEDED and step.artifact_id is not None


def _next_pool(job: Job, gpu_available: bool, start: int = 0) -> Queue:
    """The pool of the first part of the job still to do from step `start`: a step, else the evaluation."""
    for step in job.steps[start:]:
        if not _done(step):
            return capability.pool_for_step(step.technique, gpu_available=gpu_available)
    return capability.pool_for_evaluation(job.evaluation or {})


def _moved(lease: Lease, journal: JobLog, job: Job, pool: Queue) -> bool:
    """Hand the job to `pool`'s queue when this worker's queue is another; True when it moved."""
    if pool.value == job.queue:
        return False
    journal.info(f"moving to the {pool.value} pool", from_queue=job.queue, to_queue=pool.value)
    journal.flush()
    lease.hand_over(pool.value, f"waiting for a {pool.value} worker")
    return True


def _run_step(
    lease: Lease,
    settings: Settings,
    job: Job,
    step: JobStep,
    models: tuple[Path, Path],
    signature: dict[str, Any],
    workdir: Path,
    journal: JobLog,
) -> Path:
    """Run one step (or reuse its artifact from an earlier attempt) and return its output model.

    `models` is the step's input and the job's own model (a distillation step's default teacher).
    """
    current, job_model = models
    output = workdir / f"step{step.index}{CATALOG[step.technique].output_suffix}"
    if _done(step) and (reused := step.artifact_id) is not None:
        journal.info("reused the artifact of an earlier attempt", step=step.index, artifact_id=reused)
        return files.fetch_artifact(reused, output)
    total = len(job.steps) + 1
    stage = f"step {step.index + 1}/{len(job.steps)}: {step.technique}"
    lease.advance(stage, step.index / total)
    journal.info(f"{step.technique} started", step=step.index, technique=step.technique)
    journal.flush()
    datasets = files.fetch_datasets(referenced_dataset_ids(step.params), workdir / "datasets")
    named = files.fetch_models(referenced_model_ids(step.params), workdir / "models")
    started = utcnow()
    with open_box() as box:
        try:
            outcome = run_sandboxed(
                "engine.entries:run_technique",
                {
                    "technique": step.technique,
                    "model_path": box.admit(current, current.name),
                    "output_path": box.output(output.name),
                    "params": step.params,
                    "datasets": {key: box.admit(Path(path), f"{key}.npz") for key, path in datasets.items()},
                    "signature": signature,
                    "threads": settings.bench_threads,
                    "models": {
                        key: box.admit(Path(path), f"models/{key}.onnx")
                        for key, path in {JOB_MODEL: str(job_model), **named}.items()
                    },
                },
                box=box,
                limits=SandboxLimits(
                    settings.sandbox_memory_bytes, settings.step_time_limit_s, settings.bench_threads
                ),
                on_progress=_progress_writer(lease, journal, step.index, total, stage),
                should_cancel=lambda: lease.cancel_requested,
            )
        except SandboxFailure as failure:
            if isinstance(failure.problem, Cancelled):
                raise
            detail = f"step {step.index} ({step.technique}) failed: {failure.detail}"
            failed = TechniqueError(
                type(failure.problem), detail, step=step.index, technique=step.technique, **failure.extensions
            )
            record_step(lease, job, step, started=started, error=failed.document)
            journal.error(detail, step=step.index, problem=failed.slug)
            raise failed from None
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
    seconds = round((utcnow() - started).total_seconds(), 3)
    size = output.stat().st_size
    journal.info(f"{step.technique} finished", step=step.index, seconds=seconds, size_bytes=size)
    for warning in (outcome or {}).get("warnings") or []:
        journal.warning(str(warning), step=step.index)
    journal.flush()
    return output


def _progress_writer(lease: Lease, journal: JobLog, index: int, total: int, stage: str) -> Any:
    last = [0.0]

    def write(fraction: float, message: str) -> None:
        journal.info(message, step=index, fraction=round(fraction, 4))
        # Throttled: a chatty technique must not turn into a database write per batch.
        if time.monotonic() - last[0] < 1.0 and fraction < 1.0:
            return
        last[0] = time.monotonic()
        lease.advance(f"{stage}: {message}", (index + fraction) / total)
        journal.flush()

    return write


def _log_result(journal: JobLog, comparison: dict[str, Any]) -> None:
    """The evaluation's headline figures and verdict, as the last line before the job succeeds."""
    delta, verdict = comparison.get("delta") or {}, comparison.get("verdict") or {}
    journal.info(
        "evaluation finished",
        size_ratio=delta.get("size_ratio"),
        accuracy_drop=delta.get("accuracy_drop"),
        smaller=verdict.get("smaller"),
        faster=verdict.get("faster"),
        within_accuracy_budget=verdict.get("within_accuracy_budget"),
    )


def _finish(lease: Lease, journal: JobLog, status: JobStatus, *, error: dict[str, Any] | None = None) -> None:
    if error is not None:
        slug = str(error.get("type", "")).rsplit("/", 1)[-1]
        journal.error(f"job failed: {error.get('detail', '')}", problem=slug)
    else:
        journal.warning(f"job {status.value}")
    try:
        journal.flush()
        lease.finish(status, error=error)
    except LeaseLost:
        log.warning("job.lease_lost %s while recording %s", lease.job_id, status)
