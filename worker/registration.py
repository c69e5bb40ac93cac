"""Celery signal handlers: the worker's row in the `workers` table, and fork-safe database pools."""

from __future__ import annotations

import logging
import os
import threading
import time
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
        # A pool process that outlived a killed worker may still hold its folder at start-up.
        on_beat=files.remove_orphan_scratch,
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
    _exit_when_orphaned(os.getppid())


def _exit_when_orphaned(parent: int) -> None:
    """Leave when the worker that forked this pool process is gone (SIGKILLed, OOM-killed).

    Its job is re-queued to a new worker; running on would spend CPU on a lease already lost and
    keep a job folder the new worker's start-up sweep cannot remove while this process lives.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        log.warning("the worker that started pool process %d is gone; leaving", os.getpid())
        os._exit(1)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()
