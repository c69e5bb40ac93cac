"""Model rows: the upload, its canonical ONNX form and what ingest learned about it."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, IdMixin


class ModelStatus(StrEnum):
    """Ingest state of a model."""

    PENDING = "pending"
    READY = "ready"
    REJECTED = "rejected"


class Model(IdMixin, Base):
    """A model uploaded by a tenant."""

    __tablename__ = "models"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    format: Mapped[str | None] = mapped_column(String(20), default=None)
    status: Mapped[str] = mapped_column(String(20), default=ModelStatus.PENDING)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    upload_artifact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("artifacts.id"))
    onnx_artifact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("artifacts.id"), default=None)
    # What techniques receive: the canonical graph normalized at ingest (None: they get onnx_artifact_id).
    normalized_artifact_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("artifacts.id"), default=None)
    normalization: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    parameters: Mapped[int | None] = mapped_column(BigInteger, default=None)
    opset: Mapped[int | None] = mapped_column(default=None)
    op_histogram: Mapped[dict[str, int] | None] = mapped_column(JSON, default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    warnings: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    input_shapes: Mapped[list[list[int]] | None] = mapped_column(JSON, default=None)
    ingest_attempts: Mapped[int] = mapped_column(default=0)
    ingest_started_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
