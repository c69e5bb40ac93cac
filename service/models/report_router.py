"""GET /v1/models/{id}/report: every job of one model on one page, with the frontier across them."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from service.deps import SessionDep, TenantDep
from service.finite import finite_json
from service.jobs import service as jobs_service
from service.jobs.report_router import build_report, wants_html
from service.models import service as models_service
from service.report.html import content_security_policy, render_model_html
from service.report.model_report import model_report

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get(
    "/{model_id}/report",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
def get_model_report(model_id: uuid.UUID, request: Request, session: SessionDep, tenant: TenantDep) -> Any:
    """Every measured job of the model as a point (latency, accuracy loss, size), the frontier and a pick.

    With `Accept: text/html`, a self-contained page with the Pareto chart.
    """
    models_service.get_model(session=session, tenant_id=tenant, model_id=model_id)
    measured = jobs_service.measured_jobs(session=session, tenant_id=tenant, model_id=model_id)
    jobs = [build_report(job) for job in measured]
    report, _ = finite_json(model_report(str(model_id), jobs))
    if wants_html(request.headers.get("accept", "")):
        nonce = secrets.token_urlsafe(18)
        headers = {"Vary": "Accept", "Content-Security-Policy": content_security_policy(nonce)}
        return HTMLResponse(render_model_html(report, nonce), headers=headers)
    return JSONResponse(report, headers={"Vary": "Accept"})
