"""Webhooks: signed notifications of finished jobs, delivered by the workers."""

from __future__ import annotations

from service.webhooks.signing import SIGNATURE_HEADER, sign, verify
from service.webhooks.trigger import DELIVER_WEBHOOK_TASK, job_finished

__all__ = ["DELIVER_WEBHOOK_TASK", "SIGNATURE_HEADER", "job_finished", "sign", "verify"]
