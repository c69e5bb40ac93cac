"""Tenant and API key operations; keys are random tokens stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import utcnow
from service.errors import NotFound, Unauthorized
from service.tenants.orm import ApiKey, Tenant

KEY_PREFIX = "mp_"


def hash_key(key: str) -> str:
    """SHA-256 of a key; keys carry 256 bits of randomness, so a plain hash is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


def get_or_create_tenant(*, session: Session, name: str) -> Tenant:
    """The tenant with this name, created when missing."""
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        tenant = Tenant(name=name)
        session.add(tenant)
        session.flush()
    return tenant


def create_key(*, session: Session, tenant_name: str) -> str:
    """Create a new key for a tenant (creating the tenant too) and return it in clear, once."""
    tenant = get_or_create_tenant(session=session, name=tenant_name)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiKey(tenant_id=tenant.id, key_hash=hash_key(key), prefix=key[:10]))
    session.commit()
    return key


def revoke_key(*, session: Session, prefix: str) -> None:
    """Revoke every active key starting with this prefix."""
    keys = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix[:10], ApiKey.revoked_at.is_(None)))
    found = False
    for api_key in keys:
        api_key.revoked_at = utcnow()
        found = True
    if not found:
        raise NotFound(f"no active key starts with {prefix[:10]}")
    session.commit()


def authenticate(*, session: Session, key: str) -> uuid.UUID:
    """The tenant id of an active key, or Unauthorized."""
    api_key = session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    )
    if api_key is None:
        raise Unauthorized("the API key is unknown or revoked", headers={"WWW-Authenticate": "Bearer"})
    return api_key.tenant_id
