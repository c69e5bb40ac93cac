"""FastAPI dependencies: database session, settings, the caller's tenant."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.db import new_session
from service.errors import Unauthorized
from service.settings import Settings
from service.tenants import service as tenants_service

# Methods that never write: their sessions read without taking SQLite's write lock.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def request_session(request: Request) -> Iterator[Session]:
    """One session per request: reading for safe methods, writing for the others."""
    with new_session(mode="read" if request.method in SAFE_METHODS else "request") as session:
        yield session


def app_settings(request: Request) -> Settings:
    """The settings the app was built with (`create_app(settings)`), not a process-wide global."""
    settings: Settings = request.app.state.settings
    return settings


SessionDep = Annotated[Session, Depends(request_session)]
SettingsDep = Annotated[Settings, Depends(app_settings)]
# Declares the scheme in the OpenAPI document; the check itself (401 problem) is ours.
BearerDep = Annotated[
    HTTPAuthorizationCredentials | None,
    Depends(HTTPBearer(auto_error=False, description="A tenant's API key")),
]


def _authenticate(token: str) -> uuid.UUID:
    # Its own short session: the request's session (and its connection) is not opened for this.
    with new_session(mode="read") as session:
        return tenants_service.authenticate(session=session, key=token)


async def current_tenant(request: Request, bearer: BearerDep) -> uuid.UUID:
    """The tenant owning the bearer key of this request (a recently checked key costs no query)."""
    token = bearer.credentials.strip() if bearer is not None else ""
    if not token:
        raise Unauthorized("send 'Authorization: Bearer <api key>'", headers={"WWW-Authenticate": "Bearer"})
    tenant_id = tenants_service.cached_tenant(token)
    if tenant_id is None:
        tenant_id = await run_in_threadpool(_authenticate, token)
    request.state.tenant_id = tenant_id
    return tenant_id


TenantDep = Annotated[uuid.UUID, Depends(current_tenant)]
