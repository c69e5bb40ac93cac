"""Ingest an uploaded model in the sandbox and record what it is, or why it was rejected."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from service.jobs import lifecycle as jobs_lifecycle
from service.models import lifecycle
from service.settings import Settings
from service.storage import get_store
from worker import files, records
from worker.sandbox import SandboxFailure, SandboxLimits, open_box, run_sandboxed

log = logging.getLogger("modelpress.ingest")


def ingest(model_id: uuid.UUID, settings: Settings) -> None:
    """Convert and inspect a pending model; then publish the jobs that wait for it."""
    model = records.call(lifecycle.claim_ingest, model_id=model_id, max_attempts=settings.max_attempts)
    if model is None:
        return
    workdir = files.job_workdir(model_id)
    try:
        upload = files.fetch_artifact(model.upload_artifact_id, workdir / "upload.bin")
        with open_box() as box:
            try:
                facts = run_sandboxed(
                    "engine.ingest:ingest_model",
                    {
                        "upload_path": box.admit(upload, "upload.bin"),
                        "output_path": box.output("model.onnx"),
                        "workdir": box.output("scratch"),
                        "input_shapes": model.input_shapes,
                        "normalized_path": box.output("normalized.onnx"),
                    },
                    box=box,
                    limits=SandboxLimits(settings.sandbox_memory_bytes, settings.ingest_timeout_s),
                )
            except SandboxFailure as failure:
                records.call(lifecycle.ingest_failed, model_id=model_id, error=failure.document)
            else:
                store = get_store()
                stored = store.put_file(Path(box.output("model.onnx")))
                # Techniques receive the normalized graph when normalization applied (see worker/ingest).
                applied = (facts.get("normalization") or {}).get("applied")
                normalized = store.put_file(Path(box.output("normalized.onnx"))) if applied else None
                records.call(
                    lifecycle.ingest_ready,
                    model_id=model_id,
                    stored=stored,
                    facts=facts,
                    normalized=normalized,
                )
    except Exception:
        # Not the model's fault (database, store): let the sweeper retry while attempts remain.
        log.exception("model.ingest_crashed %s", model_id)
        records.call(lifecycle.release_ingest, model_id=model_id)
        return
    finally:
        files.remove_workdir(workdir)
    publish_waiting_jobs(model_id)


def publish_waiting_jobs(model_id: uuid.UUID) -> None:
    """Publish every queued job of this model (duplicates are harmless: claims are conditional)."""
    records.call(jobs_lifecycle.publish_waiting, model_id=model_id)
