"""The hook called when a job reaches a final state: publish its webhook delivery, if any."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select

from service import queue
from service.db import new_session
from service.jobs.orm import Job
from service.queue import DELIVER_WEBHOOK_TASK

log = logging.getLogger("modelpress.webhooks")

__all__ = ["DELIVER_WEBHOOK_TASK", "job_finished"]


def job_finished(job_id: uuid.UUID) -> bool:
    """Queue the delivery of a finished job's document to its callback URL; False when none is set.

    The POST itself runs in a worker task, never in the caller's thread, so a slow or dead
    receiver cannot hold up an API request or a job's final write.
    """
    with new_session() as session:
        callback_url = session.scalar(select(Job.callback_url).where(Job.id == job_id))
    if not callback_url:
        return False
    sent = queue.send(DELIVER_WEBHOOK_TASK, str(job_id))
    if not sent:
        log.warning("webhook.not_queued job %s: the broker is unreachable", job_id)
    return sent
