"""HTTP routes for artifacts: metadata and streamed content with ETag and Range."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from service.artifacts import service as artifacts_service
from service.artifacts.orm import Artifact
from service.artifacts.ranges import parse_range
from service.artifacts.schemas import ArtifactRead
from service.deps import SessionDep, SettingsDep, TenantDep
from service.errors import NotFound
from service.storage import get_store

router = APIRouter(prefix="/v1/artifacts", tags=["artifacts"])


def _get(session: SessionDep, tenant: uuid.UUID, artifact_id: uuid.UUID) -> Artifact:
    artifact = session.get(Artifact, artifact_id)
    if artifact is None or artifact.tenant_id != tenant:
        raise NotFound(f"artifact {artifact_id} does not exist")
    return artifact


@router.get("/{artifact_id}", response_model=ArtifactRead)
def get_artifact(artifact_id: uuid.UUID, session: SessionDep, tenant: TenantDep) -> Any:
    """Artifact metadata."""
    return _get(session, tenant, artifact_id)


@router.get(
    "/{artifact_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}},
        206: {"description": "Partial content"},
        307: {"description": "Presigned store URL (when the operator enables presigned downloads)"},
    },
)
def get_content(
    artifact_id: uuid.UUID, request: Request, session: SessionDep, settings: SettingsDep, tenant: TenantDep
) -> Response:
    """The artifact's bytes, streamed; ETag is the SHA-256; single Range requests are honoured.

    With presigned downloads on (S3 store), a 307 sends the client to the store itself.
    """
    artifact = _get(session, tenant, artifact_id)
    etag = f'"{artifact.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": f'attachment; filename="{_safe_name(artifact.filename)}"',
    }
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    store = get_store()
    if settings.storage_presigned_downloads and (
        url := store.download_url(
            artifact.sha256, _safe_name(artifact.filename), settings.storage_presign_expiry_s
        )
    ):
        return RedirectResponse(url, status_code=307, headers={"ETag": etag})
    size = artifact.size_bytes
    requested = request.headers.get("range")
    span = parse_range(requested, size) if requested else None
    if requested and request.headers.get("if-range") not in (None, etag):
        span = None  # the client's copy is stale: send the whole thing
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(
            store.open_range(artifact.sha256), media_type=artifact.media_type, headers=headers
        )
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(
        store.open_range(artifact.sha256, start, end),
        status_code=206,
        media_type=artifact.media_type,
        headers=headers,
    )


def _safe_name(name: str) -> str:
    return "".join(c for c in name if c.isalnum() or c in "._-")[:100] or "artifact"


@router.delete("/{artifact_id}", status_code=204)
def delete_artifact(artifact_id: uuid.UUID, session: SessionDep, tenant: TenantDep) -> Response:
    """Delete a job's output file (its report stays); 409 while a model, dataset or running job holds it."""
    artifacts_service.delete_artifact(session=session, tenant_id=tenant, artifact_id=artifact_id)
    return Response(status_code=204)
