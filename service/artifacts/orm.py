"""Artifact rows: metadata in the database, bytes in the content-addressed store."""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, IdMixin


class ArtifactKind(StrEnum):
    """What an artifact holds."""

    UPLOAD = "upload"
    MODEL = "model"
    DATASET = "dataset"


class Artifact(IdMixin, Base):
    """A file of a tenant, addressed in the store by its SHA-256."""

    __tablename__ = "artifacts"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(255))
    # Provenance only; no foreign key, so jobs and artifacts do not form a cycle.
    job_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
