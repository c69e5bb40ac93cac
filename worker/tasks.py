"""Celery tasks: thin wrappers that take ids and call the pipeline."""

from __future__ import annotations

import time
import uuid

from structlog.contextvars import bound_contextvars

from service.observability.logging import get_logger
from service.queue import INGEST_TASK, RUN_JOB_TASK, SWEEP_TASK
from service.settings import get_settings
from service.webhooks import DELIVER_WEBHOOK_TASK
from worker import ingestion, pipeline, sweeper, webhooks
from worker.app import app

log = get_logger("modelpress.tasks")


@app.task(name=INGEST_TASK)
def ingest_model(model_id: str) -> None:
    """Ingest an uploaded model."""
    with bound_contextvars(model_id=model_id):
        ingestion.ingest(uuid.UUID(model_id), get_settings())


@app.task(name=RUN_JOB_TASK)
def run_job(job_id: str) -> None:
    """Run one attempt of a job (a no-op when another delivery already claimed it)."""
    with bound_contextvars(job_id=job_id):
        started = time.monotonic()
        log.info("job.delivery_received")
        pipeline.run_job(uuid.UUID(job_id), get_settings())
        log.info("job.delivery_done", seconds=round(time.monotonic() - started, 3))


@app.task(name=DELIVER_WEBHOOK_TASK)
def deliver_webhook(
    job_id: str, attempt: int = 1, delivery_id: str | None = None, body: str | None = None
) -> None:
    """One delivery attempt of a finished job's webhook; it schedules its own retry."""
    with bound_contextvars(job_id=job_id):
        webhooks.deliver(
            uuid.UUID(job_id), get_settings(), attempt=attempt, delivery_id=delivery_id, body=body
        )


@app.task(name=SWEEP_TASK)
def sweep() -> dict[str, int]:
    """Recover lost jobs and ingests."""
    return sweeper.sweep(get_settings())
