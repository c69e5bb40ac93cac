"""GET /v1/webhook-secret and its rotation: the key that signs the tenant's webhooks."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from service.deps import SessionDep, TenantDep
from service.errors import NotFound
from service.tenants.orm import Tenant, new_webhook_secret
from service.webhooks.signing import SIGNATURE_HEADER

router = APIRouter(prefix="/v1/webhook-secret", tags=["webhooks"])


class WebhookSecret(BaseModel):
    """The tenant's signing secret and how deliveries carry the signature."""

    secret: str
    header: str = SIGNATURE_HEADER
    algorithm: str = "HMAC-SHA256 of the raw request body, hex, prefixed with 'sha256='"


def _tenant(session: SessionDep, tenant_id: TenantDep) -> Tenant:
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:  # the key authenticated a moment ago; only a concurrent delete gets here
        raise NotFound("the tenant no longer exists")
    return tenant


@router.get("", response_model=WebhookSecret)
def get_secret(session: SessionDep, tenant: TenantDep) -> WebhookSecret:
    """The secret that signs this tenant's webhook deliveries."""
    return WebhookSecret(secret=_tenant(session, tenant).webhook_secret)


@router.post("/rotate", response_model=WebhookSecret)
def rotate_secret(session: SessionDep, tenant: TenantDep) -> WebhookSecret:
    """Replace the secret; deliveries from now on are signed with the new one."""
    row = _tenant(session, tenant)
    row.webhook_secret = new_webhook_secret()
    session.commit()
    return WebhookSecret(secret=row.webhook_secret)
