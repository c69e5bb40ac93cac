"""Taking in one upload request: Idempotency-Key, storage quota, then the streamed bytes."""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, BinaryIO

from fastapi import Header, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from service import quotas
from service.errors import InvalidRequest, PayloadTooLarge
from service.idempotency import service as idempotency
from service.settings import Settings
from service.storage import StoredObject, StoreWriter, get_store
from service.uploads import ReceivedUpload, receive_upload

log = logging.getLogger("modelpress.intake")

# Limits the OpenAPI document states for the form fields (longer values are refused, not cut).
FIELD_MAX_CHARS = {"name": 255}

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Repeat a request safely: the same key and body return the original response",
    ),
]


@dataclass(frozen=True)
class Checks:
    """What an endpoint checks before an upload's bytes are committed: refused uploads store nothing."""

    head: Callable[[bytes], None] | None = None
    fields: Callable[[dict[str, str]], object] | None = None
    file: Callable[[BinaryIO], object] | None = None


@dataclass
class Intake:
    """A received upload and the id of its resource: a new one, or the original on a replay."""

    upload: ReceivedUpload
    resource_id: uuid.UUID
    replay: bool


@asynccontextmanager
async def receive(
    request: Request,
    *,
    session: Session,
    tenant_id: uuid.UUID,
    settings: Settings,
    scope: str,
    key: str | None,
    checks: Checks = Checks(),
) -> AsyncIterator[Intake]:
    """Receive the upload; the caller creates its resource inside the block, with `resource_id`.

    A replay (the key finished before) streams the body through a hash only, stores nothing and
    yields the original id; a different body is 422. If the block fails, the key is released.
    """
    held = idempotency.claim(session=session, tenant_id=tenant_id, scope=scope, key=key) if key else None
    try:
        if held is not None and held.replay:
            upload = await receive_upload(
                request, store=_HashOnly(), max_bytes=settings.max_upload_bytes, check_head=checks.head
            )
            yield Intake(upload, idempotency.replayed_resource(held, _request_hash(upload)), replay=True)
            return
        upload = await _receive_within_quota(request, session, tenant_id, settings, checks)
        resource_id = uuid.uuid4()
        if held is not None:
            idempotency.finish(held, request_hash=_request_hash(upload), resource_id=resource_id)
        yield Intake(upload, resource_id, replay=False)
    except BaseException:
        if held is not None and not held.replay:
            _release(session, held)
        raise


async def _receive_within_quota(
    request: Request,
    session: Session,
    tenant_id: uuid.UUID,
    settings: Settings,
    checks: Checks,
) -> ReceivedUpload:
    quota = settings.quota_storage_bytes
    allowance = quotas.upload_allowance(session=session, tenant_id=tenant_id, quota_bytes=quota)
    try:
        return await receive_upload(
            request,
            store=get_store(),
            max_bytes=min(settings.max_upload_bytes, allowance),
            check_head=checks.head,
            check_fields=lambda fields: _check_fields(fields, checks),
            check_file=checks.file,
        )
    except PayloadTooLarge:
        if allowance < settings.max_upload_bytes:
            raise quotas.storage_exceeded(quota - allowance, quota) from None
        raise


def _check_fields(fields: dict[str, str], checks: Checks) -> None:
    for name, limit in FIELD_MAX_CHARS.items():
        if len(fields.get(name, "")) > limit:
            raise InvalidRequest(f"form field '{name}' is longer than {limit} characters")
    if checks.fields is not None:
        checks.fields(fields)


def _request_hash(upload: ReceivedUpload) -> str:
    return idempotency.fingerprint(
        sha256=upload.stored.sha256, filename=upload.filename, fields=upload.fields
    )


def _release(session: Session, held: idempotency.Claim) -> None:
    try:
        idempotency.release(session=session, held=held)
    except SQLAlchemyError as error:  # the original error matters more; the key frees itself later
        log.warning("could not release idempotency key %s: %s", held.record.key, error)


class _HashingWriter:
    """A writer that keeps nothing: it only hashes and counts, to compare a replayed body."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size_bytes = 0

    def write(self, chunk: bytes) -> None:
        """Hash a chunk."""
        self._hash.update(chunk)
        self.size_bytes += len(chunk)

    def commit(self) -> StoredObject:
        """The digest and size of what was written."""
        return StoredObject(sha256=self._hash.hexdigest(), size_bytes=self.size_bytes)

    def abort(self) -> None:
        """Nothing to discard."""


class _HashOnly:
    """The writer factory for replays."""

    def writer(self) -> StoreWriter:
        """A hashing writer."""
        return _HashingWriter()
