"""HTTP routes for jobs and their reports."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from service.db import new_session
from service.deps import SessionDep, SettingsDep, TenantDep
from service.jobs import deletion as jobs_deletion
from service.jobs import documents, polling
from service.jobs import events as job_events
from service.jobs import logs as job_logs
from service.jobs import service as jobs_service
from service.jobs.orm import JobStatus
from service.jobs.schemas import JobCreate, JobLogLineRead, JobRead
from service.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

STATUS_PATTERN = "^(" + "|".join(s.value for s in JobStatus) + ")$"


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobRead)
def create_job(
    body: JobCreate,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    tenant: TenantDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Any:
    """Submit a job; it runs on a worker. Repeating a request with the same Idempotency-Key replays it."""
    job, _created = jobs_service.create_job(
        session=session,
        tenant_id=tenant,
        request=body,
        idempotency_key=idempotency_key,
        active_jobs_limit=settings.quota_concurrent_jobs,
        worker_timeout_s=settings.worker_timeout_s,
    )
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    response.headers.update(polling.retry_after(job.status))
    return job


@router.get("", response_model=Page[JobRead])
def list_jobs(
    session: SessionDep,
    tenant: TenantDep,
    status_filter: str | None = Query(None, alias="status", pattern=STATUS_PATTERN),
    model_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
) -> Response:
    """List the tenant's jobs, newest first."""
    page = jobs_service.list_jobs(
        session=session, tenant_id=tenant, status=status_filter, model_id=model_id, cursor=cursor, limit=limit
    )
    return Response(page.model_dump_json(), media_type="application/json")


@router.get(
    "/{job_id}",
    response_model=JobRead,
    responses={304: {"description": "Unchanged since the ETag sent in If-None-Match"}},
)
async def get_job(
    job_id: uuid.UUID,
    tenant: TenantDep,
    if_none_match: Annotated[str | None, Header(max_length=1024)] = None,
) -> Response:
    """One job with its steps and comparison; send its ETag in If-None-Match to get 304 while unchanged."""
    # The route pollers hit: session, query and serialization in one thread hop, not three.
    return await run_in_threadpool(_job_document, tenant, job_id, if_none_match)


def _job_document(tenant: uuid.UUID, job_id: uuid.UUID, if_none_match: str | None) -> Response:
    with new_session(mode="read") as session:
        job = documents.job_document(session=session, tenant_id=tenant, job_id=job_id)
        return polling.job_response(job, if_none_match)


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobRead)
def cancel_job(job_id: uuid.UUID, response: Response, session: SessionDep, tenant: TenantDep) -> Any:
    """Cancel a job: a queued one at once, a running one as soon as its worker notices."""
    job = jobs_service.cancel_job(session=session, tenant_id=tenant, job_id=job_id)
    response.headers.update(polling.retry_after(job.status))
    return job


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_job(job_id: uuid.UUID, session: SessionDep, tenant: TenantDep) -> Response:
    """Delete a finished job with its steps, report and the artifacts it made; 409 while it runs."""
    jobs_deletion.delete_job(session=session, tenant_id=tenant, job_id=job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
def job_event_stream(job_id: uuid.UUID, request: Request, session: SessionDep, tenant: TenantDep) -> Response:
    """Server-Sent Events: `job` (the document), `progress`, `step` (a step result), `end` (the final job)."""
    jobs_service.get_job(session=session, tenant_id=tenant, job_id=job_id)  # 404 before the stream starts
    session.close()  # the stream polls with its own short sessions
    return StreamingResponse(
        job_events.stream(request, job_id, tenant),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/{job_id}/logs", response_model=Page[JobLogLineRead])
def job_log_lines(
    job_id: uuid.UUID,
    session: SessionDep,
    tenant: TenantDep,
    step: int | None = Query(None, ge=0, le=10_000, description="Only this step's lines (0-based)"),
    cursor: str | None = None,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
) -> Any:
    """The job's structured log lines, oldest first; next_cursor stays set while the job runs."""
    return job_logs.log_page(
        session=session, tenant_id=tenant, job_id=job_id, cursor=cursor, limit=limit, step=step
    )
