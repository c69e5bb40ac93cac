"""Celery signal handlers: the worker's row in the `workers` table, and fork-safe database pools."""

from __future__ import annotations

import logging
from typing import Any

from celery import signals

from service.db import get_engine
from service.settings import get_settings
from service.workers.heartbeat import Heartbeat
from worker import capabilities, files, hardware

log = logging.getLogger("modelpress.workers")

_heartbeat: list[Heartbeat] = []


@signals.worker_ready.connect
def _register(sender: Any = None, **_: Any) -> None:
    """The main process registers once its consumer is ready, then beats until shutdown."""
    settings = get_settings()
    if removed := files.remove_orphan_scratch():
        log.info("removed the job folders of %d processes that no longer run", removed)
    queues = sorted(sender.app.amqp.queues.consume_from) if sender is not None else []
    heartbeat = Heartbeat(
        queues,
        interval_s=settings.worker_heartbeat_s,
        timeout_s=settings.worker_timeout_s,
        hardware=hardware.probe(),
        capabilities=capabilities.probe(),
    )
    heartbeat.start()
    _heartbeat.append(heartbeat)


@signals.worker_shutdown.connect
def _unregister(**_: Any) -> None:
    while _heartbeat:
        _heartbeat.pop().stop()


@signals.worker_process_init.connect
def _fresh_pool_in_child(**_: Any) -> None:
    """A new pool process: no database connections shared with its parent, no predecessor's files."""
    get_engine().dispose(close=False)
    files.claim_scratch()
