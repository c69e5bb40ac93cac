"""HTTP routes for datasets."""

from __future__ import annotations

import uuid
from typing import Any, BinaryIO

from fastapi import APIRouter, Query, Request, Response, status

from service import intake
from service.datasets import service as datasets_service
from service.datasets.inspect import count_samples, read_npz_headers
from service.datasets.schemas import DatasetRead
from service.deps import SessionDep, SettingsDep, TenantDep
from service.models.router import UPLOAD_BODY
from service.pagination import DEFAULT_LIMIT, MAX_LIMIT, Page

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetRead, openapi_extra=UPLOAD_BODY)
async def upload_dataset(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    tenant: TenantDep,
    idempotency_key: intake.IdempotencyKeyHeader = None,
) -> Any:
    """Upload an .npz whose arrays are named after the model's inputs, plus optional `labels`."""
    inspected: dict[str, dict[str, Any]] = {}

    def check_file(staged: BinaryIO) -> None:
        # Every value is read once here (in a worker thread, chunk by chunk) before the bytes commit.
        inspected.update(read_npz_headers(staged, scan=True))
        count_samples(inspected)

    async with intake.receive(
        request,
        session=session,
        tenant_id=tenant,
        settings=settings,
        scope="datasets",
        key=idempotency_key,
        checks=intake.Checks(file=check_file),
    ) as received:
        if received.replay:
            return datasets_service.get_dataset(
                session=session, tenant_id=tenant, dataset_id=received.resource_id
            )
        return datasets_service.create_dataset(
            session=session,
            tenant_id=tenant,
            upload=received.upload,
            name=received.upload.fields.get("name"),
            dataset_id=received.resource_id,
            arrays=inspected or None,
        )


@router.get("", response_model=Page[DatasetRead])
def list_datasets(
    session: SessionDep,
    tenant: TenantDep,
    cursor: str | None = None,
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT),
) -> Any:
    """List the tenant's datasets, newest first."""
    return datasets_service.list_datasets(session=session, tenant_id=tenant, cursor=cursor, limit=limit)


@router.get("/{dataset_id}", response_model=DatasetRead)
def get_dataset(dataset_id: uuid.UUID, session: SessionDep, tenant: TenantDep) -> Any:
    """One dataset."""
    return datasets_service.get_dataset(session=session, tenant_id=tenant, dataset_id=dataset_id)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(dataset_id: uuid.UUID, session: SessionDep, tenant: TenantDep) -> Response:
    """Delete a dataset; 409 while a queued or running job names it."""
    datasets_service.delete_dataset(session=session, tenant_id=tenant, dataset_id=dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
