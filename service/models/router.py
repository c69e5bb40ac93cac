"""HTTP routes for models."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Query, Request, Response, status

from service import intake
from service.deps import SessionDep, SettingsDep, TenantDep
from service.models import lifecycle
from service.models import service as models_service
from service.models.schemas import ModelRead
from service.models.sniff import check_model_head
from service.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter(prefix="/v1/models", tags=["models"])
UPLOAD_CHECKS = intake.Checks(
    head=check_model_head,
    fields=lambda fields: models_service.parse_input_shapes(fields.get("input_shapes")),
)

UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {"type": "string", "maxLength": 255},
                        "input_shapes": {
                            "type": "string",
                            "description": "TorchScript only: JSON list of input shapes, e.g. [[1, 3, 8, 8]]",
                        },
                    },
                }
            }
        },
    }
}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ModelRead, openapi_extra=UPLOAD_BODY)
async def upload_model(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    tenant: TenantDep,
    idempotency_key: intake.IdempotencyKeyHeader = None,
) -> Any:
    """Upload a model (multipart field `file`, optional `name`); ingest runs on a worker."""
    async with intake.receive(
        request,
        session=session,
        tenant_id=tenant,
        settings=settings,
        scope="models",
        key=idempotency_key,
        checks=UPLOAD_CHECKS,
    ) as received:
        if received.replay:
            return models_service.get_model(session=session, tenant_id=tenant, model_id=received.resource_id)
        upload = received.upload
        model = models_service.create_model(
            session=session,
            tenant_id=tenant,
            upload=upload,
            name=upload.fields.get("name"),
            input_shapes=models_service.parse_input_shapes(upload.fields.get("input_shapes")),
            model_id=received.resource_id,
        )
    lifecycle.publish_ingest(model.id)
    return model


@router.get("", response_model=Page[ModelRead])
def list_models(
    session: SessionDep,
    tenant: TenantDep,
    status_filter: str | None = Query(None, alias="status", pattern="^(pending|ready|rejected)$"),
    cursor: str | None = None,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
) -> Any:
    """List the tenant's models, newest first."""
    return models_service.list_models(
        session=session, tenant_id=tenant, status=status_filter, cursor=cursor, limit=limit
    )


@router.get("/{model_id}", response_model=ModelRead)
def get_model(model_id: uuid.UUID, session: SessionDep, tenant: TenantDep) -> Any:
    """One model."""
    return models_service.get_model(session=session, tenant_id=tenant, model_id=model_id)


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(model_id: uuid.UUID, session: SessionDep, tenant: TenantDep) -> Response:
    """Delete a model; jobs already run keep their results."""
    models_service.delete_model(session=session, tenant_id=tenant, model_id=model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
