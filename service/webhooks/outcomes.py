"""The coarse outcome of a delivery attempt: all a tenant learns about the far side, never socket text."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

DELIVERED = "delivered"
REFUSED_ADDRESS = "refused-address"  # the host is (or resolved to) a non-public address
TIMEOUT = "timeout"  # the attempt's total deadline passed, wherever it was
CONNECTION_FAILED = "connection-failed"  # no name, no route, refused, reset, TLS failure: one class


def http_outcome(status: int) -> str:
    """The outcome of an answered request: `delivered` for 2xx, `http-<status>` otherwise."""
    return DELIVERED if 200 <= status < 300 else f"http-{status}"


class WebhookDelivery(BaseModel):
    """One delivery attempt as clients see it."""

    model_config = ConfigDict(extra="ignore")  # older records carried socket error text: never shown

    delivery_id: str
    attempt: int
    event: str
    at: str
    outcome: str
    ok: bool
    status_code: int | None = None
    retry_in_s: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _coarsen_legacy(cls, data: Any) -> Any:
        # Records written before outcomes existed hold `error` text; only its class survives here.
        if isinstance(data, dict) and "outcome" not in data:
            status = data.get("status_code")
            outcome = http_outcome(status) if isinstance(status, int) else CONNECTION_FAILED
            data = {**data, "outcome": outcome, "ok": outcome == DELIVERED}
        return data
