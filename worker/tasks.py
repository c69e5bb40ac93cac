"""Celery tasks: thin wrappers that take ids and call the pipeline."""

from __future__ import annotations

import time
import uuid

from celery import Task
from structlog.contextvars import bound_contextvars

from service.observability.logging import get_logger
from service.queue import DELIVER_WEBHOOK_TASK, INGEST_TASK, RUN_JOB_TASK, SWEEP_TASK, WEBHOOK_QUEUE
from service.settings import get_settings
from worker import ingestion, pipeline, sweeper, webhooks
from worker.app import app

log = get_logger("modelpress.tasks")
_webhook_deadline_s = get_settings().webhook_timeout_s


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


@app.task(
    bind=True,
    name=DELIVER_WEBHOOK_TASK,
    queue=WEBHOOK_QUEUE,
    # The POST ends by its own deadline; these limits also bound DNS and the two database writes.
    soft_time_limit=_webhook_deadline_s + 20,
    time_limit=_webhook_deadline_s + 30,
    max_retries=get_settings().webhook_max_attempts - 1,
    # At-least-once: a delivery cut by a lost worker is sent again; receivers dedupe on its id.
    acks_late=True,
)
def deliver_webhook(self: Task, job_id: str, delivery_id: str | None = None, body: str | None = None) -> None:
    """One delivery attempt of a finished job's webhook; a failed one is retried with backoff."""
    attempt = self.request.retries + 1
    with bound_contextvars(job_id=job_id):
        retry = webhooks.deliver(
            uuid.UUID(job_id),
            get_settings(),
            attempt=attempt,
            may_retry=attempt <= (self.max_retries or 0),
            delivery_id=delivery_id,
            body=body,
        )
    if retry is not None:
        kwargs = {"job_id": job_id, "delivery_id": retry.delivery_id, "body": retry.body}
        raise self.retry(args=(), kwargs=kwargs, countdown=retry.countdown, queue=WEBHOOK_QUEUE)


@app.task(name=SWEEP_TASK)
def sweep() -> dict[str, int]:
    """Recover lost jobs and ingests."""
    return sweeper.sweep(get_settings())
