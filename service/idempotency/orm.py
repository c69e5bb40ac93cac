"""One row per (tenant, endpoint, Idempotency-Key): in progress, or done with what it created."""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, IdMixin


class KeyStatus(StrEnum):
    """Whether the first request with a key is still running."""

    IN_PROGRESS = "in_progress"
    DONE = "done"


class IdempotencyKey(IdMixin, Base):
    """A key a client sent with a create request; `created_at` is when the current holder took it."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "scope", "key"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    scope: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default=KeyStatus.IN_PROGRESS)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    resource_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
