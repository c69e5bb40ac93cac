"""Ingest an uploaded model in the sandbox and record what it is, or why it was rejected."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from sqlalchemy import select, update

from service import queue
from service.artifacts.orm import Artifact, ArtifactKind
from service.db import new_session, utcnow
from service.jobs.orm import Job, JobStatus
from service.models.orm import Model, ModelStatus
from service.settings import Settings
from service.storage import get_store
from worker import files
from worker.sandbox import SandboxFailure, SandboxLimits, open_box, run_sandboxed

log = logging.getLogger("modelpress.ingest")


def ingest(model_id: uuid.UUID, settings: Settings) -> None:
    """Convert and inspect a pending model; then publish the jobs that wait for it."""
    if not _claim(model_id, settings):
        return
    workdir = files.job_workdir(model_id)
    try:
        with new_session() as session:
            model = session.get(Model, model_id)
            assert model is not None
            upload_artifact_id = model.upload_artifact_id
            tenant_id, input_shapes = model.tenant_id, model.input_shapes
        upload = files.fetch_artifact(upload_artifact_id, workdir / "upload.bin")
        with open_box() as box:
            try:
                facts = run_sandboxed(
                    "worker.ingest:ingest_model",
                    {
                        "upload_path": box.admit(upload, "upload.bin"),
                        "output_path": box.output("model.onnx"),
                        "workdir": box.output("scratch"),
                        "input_shapes": input_shapes,
                        "normalized_path": box.output("normalized.onnx"),
                    },
                    box=box,
                    limits=SandboxLimits(settings.sandbox_memory_bytes, settings.ingest_timeout_s),
                )
            except SandboxFailure as failure:
                _finish(model_id, status=ModelStatus.REJECTED, error=failure.document)
            else:
                normalization = facts.get("normalization") or {}
                canonical, normalized = Path(box.output("model.onnx")), Path(box.output("normalized.onnx"))
                _finish(
                    model_id,
                    status=ModelStatus.READY,
                    onnx_artifact_id=_store_model(tenant_id, canonical, f"{model_id}.onnx"),
                    normalized_artifact_id=_store_model(tenant_id, normalized, f"{model_id}.normalized.onnx")
                    if normalization.get("applied")
                    else None,
                    normalization=normalization,
                    format=facts["format"],
                    signature=facts["signature"],
                    parameters=facts["parameters"],
                    opset=facts["opset"],
                    op_histogram=facts["op_histogram"],
                    warnings=facts.get("warnings") or [],
                )
    except Exception:
        # Not the model's fault (database, store): let the sweeper retry while attempts remain.
        log.exception("model.ingest_crashed %s", model_id)
        _release(model_id)
        return
    finally:
        files.remove_workdir(workdir)
    publish_waiting_jobs(model_id)


def _store_model(tenant_id: uuid.UUID, path: Path, filename: str) -> uuid.UUID:
    """Store a model file the sandbox wrote and return its artifact row's id."""
    stored = get_store().put_file(path)
    with new_session() as session:
        artifact = Artifact(
            tenant_id=tenant_id,
            kind=ArtifactKind.MODEL,
            sha256=stored.sha256,
            size_bytes=stored.size_bytes,
            media_type="application/octet-stream",
            filename=filename,
        )
        session.add(artifact)
        session.commit()
        return artifact.id


def _claim(model_id: uuid.UUID, settings: Settings) -> bool:
    with new_session() as session:
        claimed = session.execute(
            update(Model)
            .where(
                Model.id == model_id,
                Model.status == ModelStatus.PENDING,
                Model.ingest_attempts < settings.max_attempts,
            )
            .values(ingest_attempts=Model.ingest_attempts + 1, ingest_started_at=utcnow())
        ).rowcount  # type: ignore[attr-defined]
        session.commit()
    return bool(claimed)


def _release(model_id: uuid.UUID) -> None:
    with new_session() as session:
        session.execute(
            update(Model)
            .where(Model.id == model_id, Model.status == ModelStatus.PENDING)
            .values(ingest_started_at=None)
        )
        session.commit()


def _finish(model_id: uuid.UUID, **values: object) -> None:
    with new_session() as session:
        session.execute(
            update(Model).where(Model.id == model_id, Model.status == ModelStatus.PENDING).values(**values)
        )
        session.commit()
    log.info("model.ingested %s -> %s", model_id, values.get("status"))


def publish_waiting_jobs(model_id: uuid.UUID) -> None:
    """Publish every queued job of this model (duplicates are harmless: claims are conditional)."""
    with new_session() as session:
        waiting = session.scalars(select(Job).where(Job.model_id == model_id, Job.status == JobStatus.QUEUED))
        for job in waiting:
            if queue.send(queue.RUN_JOB_TASK, str(job.id), queue=job.queue):
                job.enqueued_at = utcnow()
        session.commit()
