"""Deliver a finished job's document to its callback URL: signed, recorded coarsely, retried by the task."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from service.db import new_session, utcnow
from service.jobs.orm import Job
from service.jobs.schemas import JobRead
from service.settings import Settings
from service.tenants.orm import Tenant
from service.webhooks import sign
from service.webhooks.outcomes import DELIVERED, REFUSED_ADDRESS
from service.webhooks.signing import ATTEMPT_HEADER, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER
from worker import webhook_post

log = logging.getLogger("modelpress.webhooks")


@dataclass(frozen=True)
class NextAttempt:
    """A failed attempt's retry: when, and the frozen delivery id and body it must carry."""

    countdown: float
    delivery_id: str
    body: str


def deliver(
    job_id: uuid.UUID,
    settings: Settings,
    *,
    attempt: int = 1,
    may_retry: bool = True,
    delivery_id: str | None = None,
    body: str | None = None,
) -> NextAttempt | None:
    """Make one delivery attempt and record it; the retry to schedule when it failed, else None.

    The body is frozen at the first attempt so every retry carries the same bytes and signature.
    A refused address is not retried: the policy, not the receiver, said no.
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
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ModelPress-Webhook/1",
        SIGNATURE_HEADER: sign(secret, body.encode()),
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
        ATTEMPT_HEADER: str(attempt),
    }
    at, started = utcnow().isoformat(), time.monotonic()
    result = webhook_post.post(
        url,
        body.encode(),
        headers,
        timeout_s=settings.webhook_timeout_s,
        allowed=settings.webhook_allowed_networks,
    )
    record: dict[str, Any] = {
        "delivery_id": delivery_id,
        "attempt": attempt,
        "event": event,
        "at": at,
        "outcome": result.outcome,
        "ok": result.outcome == DELIVERED,
        "status_code": result.status_code,
    }
    retry = may_retry and result.outcome not in (DELIVERED, REFUSED_ADDRESS)
    if retry:
        record["retry_in_s"] = settings.webhook_backoff_s * 2 ** (attempt - 1)
    _record(job_id, record)
    # Only the worker's log holds the timing; the tenant sees the coarse outcome.
    log.info(
        "webhook.attempt job %s attempt %d -> %s in %.0f ms",
        job_id,
        attempt,
        result.outcome,
        (time.monotonic() - started) * 1000,
    )
    return NextAttempt(record["retry_in_s"], delivery_id, body) if retry else None


def _record(job_id: uuid.UUID, record: dict[str, Any]) -> None:
    with new_session() as session:
        # Row lock: attempts of one delivery are sequential, but a re-triggered delivery may overlap.
        job = session.scalar(select(Job).where(Job.id == job_id).with_for_update())
        if job is not None:
            job.webhook_deliveries = [*(job.webhook_deliveries or []), record]
            session.commit()
