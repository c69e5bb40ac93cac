"""FastAPI dependencies: database session, settings, the caller's tenant."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.db import get_db
from service.errors import Unauthorized
from service.settings import Settings, get_settings
from service.tenants import service as tenants_service

SessionDep = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
# Declares the scheme in the OpenAPI document; the check itself (401 problem) is ours.
BearerDep = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, description="A tenant's API key")),
]


def current_tenant(request: Request, session: SessionDep, bearer: BearerDep) -> uuid.UUID:
    """The tenant owning the bearer key of this request."""
    token = bearer.credentials.strip() if bearer is not None else ""
    if not token:
        raise Unauthorized("send 'Authorization: Bearer <api key>'", headers={"WWW-Authenticate": "Bearer"})
    tenant_id = tenants_service.authenticate(session=session, key=token)
    # End the read transaction now: an upload may stream for minutes before the next query.
    session.commit()
    request.state.tenant_id = tenant_id
    return tenant_id


TenantDep = Annotated[uuid.UUID, Depends(current_tenant)]
