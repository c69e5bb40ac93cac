"""Tenant and API key operations; keys are random tokens stored as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from functools import lru_cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import utcnow
from service.errors import NotFound, Unauthorized
from service.settings import get_settings
from service.tenants.key_cache import KeyCache
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
    revoked = []
    for api_key in keys:
        api_key.revoked_at = utcnow()
        revoked.append(api_key.key_hash)
    if not revoked:
        raise NotFound(f"no active key starts with {prefix[:10]}")
    session.commit()
    key_cache().forget(revoked)


@lru_cache
def key_cache() -> KeyCache:
    """This process's cache of checked keys."""
    return KeyCache(ttl_s=get_settings().auth_cache_s)


def cached_tenant(key: str) -> uuid.UUID | None:
    """The tenant of a key checked within the last auth_cache_s seconds, without a query."""
    return key_cache().get(hash_key(key))


def authenticate(*, session: Session, key: str) -> uuid.UUID:
    """The tenant id of an active key (remembered for auth_cache_s), or Unauthorized."""
    key_hash = hash_key(key)
    tenant_id = session.scalar(
        select(ApiKey.tenant_id).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )
    if tenant_id is None:
        raise Unauthorized("the API key is unknown or revoked", headers={"WWW-Authenticate": "Bearer"})
    key_cache().put(key_hash, tenant_id)
    return tenant_id
