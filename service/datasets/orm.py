"""Dataset rows: the .npz artifact and the arrays it holds."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, IdMixin


class Dataset(IdMixin, Base):
    """A dataset of a tenant: arrays named after a model's inputs, plus optional labels."""

    __tablename__ = "datasets"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    artifact_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("artifacts.id"))
    arrays: Mapped[dict[str, Any]] = mapped_column(JSON)
    samples: Mapped[int]
