"""The Celery app shared by the API (to send tasks by name) and the workers (to run them)."""

from __future__ import annotations

import logging
from functools import lru_cache

from celery import Celery

from service.catalog.base import Queue
from service.settings import Settings, get_settings

log = logging.getLogger("modelpress.queue")

INGEST_TASK = "modelpress.ingest_model"
RUN_JOB_TASK = "modelpress.run_job"
SWEEP_TASK = "modelpress.sweep"
DELIVER_WEBHOOK_TASK = "modelpress.deliver_webhook"
WEBHOOK_QUEUE = Queue.WEBHOOKS
# Where a task sent by name goes; each task declares the same queue (and its limits) in worker.tasks.
TASK_QUEUES = {INGEST_TASK: Queue.CPU, SWEEP_TASK: Queue.CPU, DELIVER_WEBHOOK_TASK: Queue.WEBHOOKS}


def make_celery(settings: Settings) -> Celery:
    """A Celery app configured for durable delivery: late ack, prefetch 1, no result backend."""
    app = Celery("modelpress", broker=settings.resolved_broker_url)
    transport_options: dict[str, object] = {
        # Longer than the longest step or ingest; a message redelivered while it runs finds it claimed.
        "visibility_timeout": max(settings.step_time_limit_s, settings.ingest_timeout_s) * 2 + 600,
    }
    if settings.is_embedded:
        folder = settings.broker_folder
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        transport_options.update(
            data_folder_in=str(folder),
            data_folder_out=str(folder),
            processed_folder=str(folder / "processed"),
            control_folder=str(folder / "control"),
            store_processed=False,
        )
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue=Queue.CPU.value,
        task_routes={task: {"queue": queue.value} for task, queue in TASK_QUEUES.items()},
        worker_hijack_root_logger=False,
        beat_schedule={
            "sweep": {
                "task": SWEEP_TASK,
                "schedule": settings.sweep_interval_s,
                "options": {"queue": TASK_QUEUES[SWEEP_TASK].value},
            }
        },
    )
    return app


@lru_cache
def get_celery() -> Celery:
    """The process-wide Celery app."""
    return make_celery(get_settings())


def send(task: str, *args: str, queue: Queue | None = None) -> bool:
    """Publish a task (to its own queue unless told); False when the broker is unreachable."""
    target = queue or TASK_QUEUES.get(task, Queue.CPU)
    try:
        get_celery().send_task(task, args=list(args), queue=target.value, retry=False)
    except Exception as exc:  # kombu raises many types for a broker that is down
        log.warning("could not publish %s%s: %s", task, args, exc)
        return False
    return True
