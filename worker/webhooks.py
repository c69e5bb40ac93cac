"""Deliver a finished job's document to its callback URL: signed, recorded coarsely, retried by the task."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from service.db import utcnow
from service.settings import Settings
from service.webhooks import deliveries, sign
from service.webhooks.outcomes import DELIVERED, REFUSED_ADDRESS
from service.webhooks.signing import ATTEMPT_HEADER, DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER
from worker import records, webhook_post

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
    target = records.call(deliveries.target, job_id=job_id)
    if target is None:
        return None
    url, secret, event = target.url, target.secret, target.event
    body = target.body if body is None else body
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
    records.call(deliveries.record, job_id=job_id, attempt=record)
    # Only the worker's log holds the timing; the tenant sees the coarse outcome.
    log.info(
        "webhook.attempt job %s attempt %d -> %s in %.0f ms",
        job_id,
        attempt,
        result.outcome,
        (time.monotonic() - started) * 1000,
    )
    return NextAttempt(record["retry_in_s"], delivery_id, body) if retry else None
