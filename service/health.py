"""Liveness and readiness (no authentication needed)."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.db import get_engine, new_session
from service.deps import SettingsDep
from service.queue import get_celery
from service.settings import Settings
from service.storage import get_store
from service.workers import registry

router = APIRouter(tags=["service"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


def _check_database() -> str:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT 1"))
    return "ok"


def _check_broker() -> str:
    with get_celery().connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, timeout=2)
    return "ok"


def _check_store() -> str:
    get_store().check()
    return "ok"


def _check_workers(settings: Settings) -> str:
    # Jobs only run when some worker beats; its row in `workers` says so without asking the broker.
    with new_session() as session:
        live = registry.live_count(session, timeout_s=settings.worker_timeout_s)
    return "ok" if live else "no live worker"


_READINESS = {"content": {"application/json": {"schema": {"type": "object"}}}}


@router.get(
    "/readyz",
    responses={
        200: {"description": "Every dependency answers and a worker is alive", **_READINESS},
        503: {"description": "The checks name the dependencies that do not answer", **_READINESS},
    },
)
def readyz(settings: SettingsDep) -> JSONResponse:
    """Whether the database, broker and store answer and a worker beats; 503 naming what is not."""
    checks: dict[str, str] = {}
    for name, check in (
        ("database", _check_database),
        ("broker", _check_broker),
        ("store", _check_store),
        ("workers", partial(_check_workers, settings)),
    ):
        try:
            checks[name] = check()
        except Exception as exc:  # any failure means not ready; the message says which
            checks[name] = f"unavailable: {type(exc).__name__}: {exc}"[:300]
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503
    )
