"""GET /v1/jobs/{id}/report: the comparison of the original and the final model."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from service.deps import SessionDep, TenantDep
from service.errors import Conflict
from service.finite import finite_json, non_finite_warning
from service.jobs import service as jobs_service
from service.jobs.orm import Job
from service.report.html import content_security_policy, render_html

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


def build_report(job: Job) -> dict[str, Any]:
    """The report document: what was done, to what, and how it measured; never a non-finite number."""
    report, replaced = finite_json(_report_of(job))
    if replaced:
        verdict = (report.get("comparison") or {}).get("verdict")
        if isinstance(verdict, dict):
            verdict["warnings"] = [*(verdict.get("warnings") or []), non_finite_warning(replaced)]
        report["warnings"] = [non_finite_warning(replaced)]
    return dict(report)


def _report_of(job: Job) -> dict[str, Any]:
    return {
        "job_id": str(job.id),
        "model_id": str(job.model_id),
        "status": job.status,
        "artifact_id": str(job.artifact_id) if job.artifact_id else None,
        "steps": [
            {
                "index": step.index,
                "technique": step.technique,
                "params": step.params,
                "status": step.status,
                "metrics": step.metrics,
                "warnings": step.warnings or [],
            }
            for step in job.steps
        ],
        "evaluation": job.evaluation,
        "comparison": job.comparison,
    }


def wants_html(accept: str) -> bool:
    """True when the client asks for text/html ahead of JSON (a browser, or `Accept: text/html`)."""
    ranked = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if "text/html" not in ranked:
        return False
    return "application/json" not in ranked or ranked.index("text/html") < ranked.index("application/json")


@router.get(
    "/{job_id}/report",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
def get_report(job_id: uuid.UUID, request: Request, session: SessionDep, tenant: TenantDep) -> Any:
    """The job's comparison as JSON; with `Accept: text/html`, a self-contained page with charts."""
    job = jobs_service.get_job(session=session, tenant_id=tenant, job_id=job_id)
    if job.comparison is None:
        raise Conflict(f"job {job_id} has no report yet (status {job.status})", job_status=job.status)
    report = build_report(job)
    if wants_html(request.headers.get("accept", "")):
        nonce = secrets.token_urlsafe(18)
        headers = {"Vary": "Accept", "Content-Security-Policy": content_security_policy(nonce)}
        return HTMLResponse(render_html(report, nonce), headers=headers)
    return JSONResponse(report, headers={"Vary": "Accept"})
