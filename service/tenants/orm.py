"""Tenants and API keys (stored as hashes, never in clear)."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, IdMixin


def new_webhook_secret() -> str:
    """A random secret that signs the tenant's webhook deliveries."""
    return "whsec_" + secrets.token_hex(24)


class Tenant(IdMixin, Base):
    """An owner of models, datasets and jobs; every object belongs to exactly one."""

    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    webhook_secret: Mapped[str] = mapped_column(String(64), default=new_webhook_secret)


class ApiKey(IdMixin, Base):
    """A bearer key of a tenant; only its SHA-256 is stored."""

    __tablename__ = "api_keys"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
