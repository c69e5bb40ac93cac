"""Claim, finish and release idempotency keys (IETF draft-ietf-httpapi-idempotency-key-header).

The first request with a key inserts a row marked in progress and commits at once, so a second
request with the same key sees it: 409 while the first runs; once the first is done, the same
body gets the original resource back and a different body 422. A failed request releases its
key, so the client's retry runs anew.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import utcnow
from service.errors import IdempotencyKeyInUse, IdempotencyMismatch
from service.idempotency.orm import IdempotencyKey, KeyStatus

# A finished key answers replays for a day (as Stripe does); after that it may be used afresh.
KEEP = timedelta(hours=24)
# An in-progress key older than this belongs to a request whose API process died: take it over.
ABANDONED = timedelta(hours=1)
RETRY_AFTER_S = 5


@dataclass
class Claim:
    """A key held by this request; `replay` when an earlier request with it already finished."""

    record: IdempotencyKey
    replay: bool


def fingerprint(*, sha256: str, filename: str, fields: dict[str, str]) -> str:
    """SHA-256 of what makes an upload request: its bytes, file name and form fields."""
    canonical = json.dumps({"sha256": sha256, "filename": filename, "fields": fields}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim(*, session: Session, tenant_id: uuid.UUID, scope: str, key: str) -> Claim:
    """Hold the key for this request, or learn that it finished before; 409 while another holds it."""
    now = utcnow()
    record = IdempotencyKey(tenant_id=tenant_id, scope=scope, key=key, created_at=now)
    session.add(record)
    try:
        session.commit()
        return Claim(record, replay=False)
    except IntegrityError:
        session.rollback()
    existing = session.scalar(
        select(IdempotencyKey).where(
            IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.scope == scope, IdempotencyKey.key == key
        )
    )
    if existing is None:  # released between our insert and our read: the client may simply retry
        raise _in_use(key)
    age = now - _aware(existing.created_at)
    if existing.status == KeyStatus.DONE and age < KEEP:
        return Claim(existing, replay=True)
    if existing.status == KeyStatus.IN_PROGRESS and age < ABANDONED:
        raise _in_use(key)
    taken = session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.id == existing.id, IdempotencyKey.created_at == existing.created_at)
        .values(status=KeyStatus.IN_PROGRESS, created_at=now, request_hash=None, resource_id=None)
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    if not taken:
        raise _in_use(key)
    session.refresh(existing)
    return Claim(existing, replay=False)


def replayed_resource(held: Claim, request_hash: str) -> uuid.UUID:
    """The id the original request created; 422 when this request's body differs from it."""
    if held.record.request_hash != request_hash or held.record.resource_id is None:
        raise IdempotencyMismatch(
            "this Idempotency-Key was used with a different upload (bytes, file name or fields);"
            " use a new key",
            resource_id=str(held.record.resource_id),
        )
    return held.record.resource_id


def finish(held: Claim, *, request_hash: str, resource_id: uuid.UUID) -> None:
    """Mark the key done; it is written by the caller's next commit, with the resource it created."""
    held.record.status = KeyStatus.DONE
    held.record.request_hash = request_hash
    held.record.resource_id = resource_id


def release(*, session: Session, held: Claim) -> None:
    """Forget a key whose request failed, so that a retry with it runs anew."""
    session.rollback()
    session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.id == held.record.id, IdempotencyKey.status == KeyStatus.IN_PROGRESS
        )
    )
    session.commit()


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes even for timezone-aware columns.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _in_use(key: str) -> IdempotencyKeyInUse:
    return IdempotencyKeyInUse(
        f"a request with Idempotency-Key {key!r} is still in progress; retry when it has finished",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
