"""Celery tasks: thin wrappers that take ids and call the pipeline; each declares its queue and limits.

None retries by Celery's machinery except the webhook delivery: a job or an ingest that fails for
a transient reason (a lost worker, the database away) keeps its row claimable, and the sweeper
publishes it again within its bounded attempts.
"""

from __future__ import annotations

import time
import uuid

from celery import Task
from structlog.contextvars import bound_contextvars

from service.jobs.schemas import MAX_STEPS
from service.observability.logging import get_logger
from service.queue import (
    DELIVER_WEBHOOK_TASK,
    INGEST_TASK,
    RUN_JOB_TASK,
    SWEEP_TASK,
    TASK_QUEUES,
    Queue,
)
from service.settings import get_settings
from worker import ingest_step as ingestion
from worker import pipeline, sweeper, webhooks
from worker.app import app

log = get_logger("modelpress.tasks")
_settings = get_settings()
# The sandbox ends each step (and ingest) at its own limit; these are the safety net above it.
_JOB_HARD_S = _settings.step_time_limit_s * (MAX_STEPS + 2) + 600  # every step, the evaluation, slack
_INGEST_HARD_S = _settings.ingest_timeout_s + 600  # the sandbox's limit, plus fetching and storing
_SWEEP_HARD_S = 600  # one pass is a few queries and publishes; longer means the database is stuck
_WEBHOOK_DEADLINE_S = _settings.webhook_timeout_s


@app.task(
    name=INGEST_TASK,
    queue=TASK_QUEUES[INGEST_TASK].value,
    soft_time_limit=_INGEST_HARD_S - 300,
    time_limit=_INGEST_HARD_S,
    max_retries=0,
)
def ingest_model(model_id: str) -> None:
    """Ingest an uploaded model."""
    with bound_contextvars(model_id=model_id):
        ingestion.ingest(uuid.UUID(model_id), get_settings())


# Published to the job's own pool (cpu or gpu); the queue here is where a job without one goes.
@app.task(
    name=RUN_JOB_TASK,
    queue=Queue.CPU.value,
    soft_time_limit=_JOB_HARD_S - 300,
    time_limit=_JOB_HARD_S,
    max_retries=0,
)
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
    queue=TASK_QUEUES[DELIVER_WEBHOOK_TASK].value,
    # The POST ends by its own deadline; these limits also bound DNS and the two database writes.
    soft_time_limit=_WEBHOOK_DEADLINE_S + 20,
    time_limit=_WEBHOOK_DEADLINE_S + 30,
    max_retries=_settings.webhook_max_attempts - 1,
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
        raise self.retry(args=(), kwargs=kwargs, countdown=retry.countdown, queue=self.queue)


@app.task(
    name=SWEEP_TASK,
    queue=TASK_QUEUES[SWEEP_TASK].value,
    soft_time_limit=_SWEEP_HARD_S - 60,
    time_limit=_SWEEP_HARD_S,
    max_retries=0,  # the next beat is the retry
)
def sweep() -> dict[str, int]:
    """Recover lost jobs and ingests."""
    return sweeper.sweep(get_settings())
