"""The worker's Celery app: the shared configuration plus this package's tasks."""

from __future__ import annotations

import os
import sys

from celery.signals import worker_init

import service.orm  # noqa: F401  (every table must be known before the first flush)
from service.observability.logging import configure_logging
from service.queue import get_celery
from service.settings import get_settings
from worker.sandbox.layers import SandboxUnavailable, require_isolation

configure_logging(get_settings())  # JSON lines with the job id bound by the tasks

app = get_celery()
app.conf.include = ["worker.tasks"]


@worker_init.connect
def _refuse_without_isolation(**_: object) -> None:
    """Fail closed: a worker that cannot isolate untrusted models does not start (unless opted out)."""
    try:
        require_isolation(get_settings())
    except SandboxUnavailable as unavailable:
        sys.stderr.write(f"modelpress worker refused to start: {unavailable}\n")
        raise SystemExit(78) from None  # EX_CONFIG


@worker_init.connect
def _yield_the_cpu(**_: object) -> None:
    """Lower this worker's priority (its sandboxed children inherit it) where the API shares its cores."""
    niceness = get_settings().worker_niceness
    if niceness:
        os.nice(niceness)


import worker.registration  # noqa: E402, F401  (registers the worker and its heartbeat)
