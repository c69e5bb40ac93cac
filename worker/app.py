"""The worker's Celery app: the shared configuration plus this package's tasks."""

from __future__ import annotations

import service.orm  # noqa: F401  (every table must be known before the first flush)
from service.observability.logging import configure_logging
from service.queue import get_celery
from service.settings import get_settings

configure_logging(get_settings())  # JSON lines with the job id bound by the tasks

app = get_celery()
app.conf.include = ["worker.tasks"]

import worker.registration  # noqa: E402, F401  (registers the worker and its heartbeat)
