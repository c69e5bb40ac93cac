"""Deliver a finished job's document to its callback URL: signed, retried with backoff, recorded."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from service.db import new_session, utcnow
from service.jobs.orm import Job
from service.jobs.schemas import JobRead
from service.queue import get_celery
from service.settings import Settings
from service.tenants.orm import Tenant
from service.webhooks import DELIVER_WEBHOOK_TASK, sign
from service.webhooks.signing import ATTEMPT_HEADER, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER

log = logging.getLogger("modelpress.webhooks")


def deliver(
    job_id: uuid.UUID,
    settings: Settings,
    *,
    attempt: int = 1,
    delivery_id: str | None = None,
    body: str | None = None,
) -> dict[str, Any] | None:
    """Make one delivery attempt; schedule the next with exponential backoff when it fails.

    The body is frozen at the first attempt so every retry carries the same bytes and signature.
    Returns the recorded attempt, or None when the job has no callback URL.
    """
    with new_session() as session:
        job = session.get(Job, job_id)
        if job is None or not job.callback_url:
            return None
        tenant = session.get(Tenant, job.tenant_id)
        assert tenant is not None
        url, secret, event = job.callback_url, tenant.webhook_secret, f"job.{job.status}"
        if body is None:
            body = JobRead.model_validate(job).model_dump_json()
    delivery_id = delivery_id or uuid.uuid4().hex
    record = _post(
        url,
        body.encode(),
        secret,
        event=event,
        delivery_id=delivery_id,
        attempt=attempt,
        timeout=settings.webhook_timeout_s,
    )
    retry = not record["ok"] and attempt < settings.webhook_max_attempts
    if retry:
        record["retry_in_s"] = settings.webhook_backoff_s * 2 ** (attempt - 1)
    _record(job_id, record)
    log.info(
        "webhook.attempt job %s attempt %d -> %s",
        job_id,
        attempt,
        record.get("status_code") or record["error"],
    )
    if retry:
        _schedule(job_id, attempt + 1, delivery_id, body, record["retry_in_s"])
    return record


def _post(
    url: str, body: bytes, secret: str, *, event: str, delivery_id: str, attempt: int, timeout: float
) -> dict[str, Any]:
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ModelPress-Webhook/1",
        SIGNATURE_HEADER: sign(secret, body),
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        ATTEMPT_HEADER: str(attempt),
    }
    record: dict[str, Any] = {
        "delivery_id": delivery_id,
        "attempt": attempt,
        "event": event,
        "at": utcnow().isoformat(),
        "status_code": None,
        "error": None,
    }
    started = time.monotonic()
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"[:300]
    else:
        record["status_code"] = response.status_code
        if not response.is_success:
            record["error"] = f"HTTP {response.status_code}"
    record["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    record["ok"] = record["error"] is None
    return record


def _record(job_id: uuid.UUID, record: dict[str, Any]) -> None:
    with new_session() as session:
        # Row lock: attempts of one delivery are sequential, but a re-triggered delivery may overlap.
        job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
        if job is not None:
            job.webhook_deliveries = [*(job.webhook_deliveries or []), record]
            session.commit()


def _schedule(job_id: uuid.UUID, attempt: int, delivery_id: str, body: str, countdown: float) -> None:
    get_celery().send_task(
        DELIVER_WEBHOOK_TASK,
        args=[str(job_id)],
        kwargs={"attempt": attempt, "delivery_id": delivery_id, "body": body},
        countdown=countdown,
        queue="cpu",
    )
