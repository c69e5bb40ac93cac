"""HMAC-SHA256 signatures of webhook bodies, as sent in X-ModelPress-Signature."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-ModelPress-Signature"
EVENT_HEADER = "X-ModelPress-Event"
DELIVERY_HEADER = "X-ModelPress-Delivery"
ATTEMPT_HEADER = "X-ModelPress-Attempt"


def sign(secret: str, body: bytes) -> str:
    """The signature header value: `sha256=` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """Whether a received signature header matches the body (constant-time comparison)."""
    return hmac.compare_digest(sign(secret, body), header.strip())
