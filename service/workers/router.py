"""GET /v1/workers: the live hardware classes a tenant's jobs can run on (no hostnames)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.deps import SessionDep, SettingsDep, TenantDep
from service.workers import registry
from service.workers.classes import classes

router = APIRouter(prefix="/v1/workers", tags=["workers"])


@router.get("")
def list_worker_classes(session: SessionDep, settings: SettingsDep, _tenant: TenantDep) -> dict[str, Any]:
    """Live worker classes (pool, CPU int8 flags, GPU model, runtime versions) with a count each."""
    live = registry.live(session, timeout_s=settings.worker_timeout_s)
    return {"items": classes(live)}
