"""Dataset operations."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.artifacts import service as artifacts_service
from service.artifacts.orm import ArtifactKind
from service.datasets.inspect import count_samples, read_npz_headers
from service.datasets.orm import Dataset
from service.datasets.schemas import DatasetRead
from service.errors import NotFound
from service.jobs.usage import refuse_while_used
from service.pagination import page_of, paginate
from service.storage import get_store
from service.uploads import ReceivedUpload


def create_dataset(
    *,
    session: Session,
    tenant_id: uuid.UUID,
    upload: ReceivedUpload,
    name: str | None,
    dataset_id: uuid.UUID | None = None,
    arrays: dict[str, dict[str, Any]] | None = None,
) -> Dataset:
    """Record an uploaded .npz; `arrays` is what its scan found, else its headers are read now."""
    if arrays is None:
        with get_store().reader(upload.stored.sha256) as stored:
            arrays = read_npz_headers(stored)
    samples = count_samples(arrays)
    artifact = artifacts_service.add_upload(
        session=session,
        tenant_id=tenant_id,
        upload=upload,
        kind=ArtifactKind.DATASET,
        media_type="application/x-npz",
    )
    dataset = Dataset(
        id=dataset_id or uuid.uuid4(),
        tenant_id=tenant_id,
        name=(name or upload.filename or "dataset")[:255],
        artifact_id=artifact.id,
        arrays=arrays,
        samples=samples,
    )
    session.add(dataset)
    session.commit()
    return dataset


def get_dataset(*, session: Session, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> Dataset:
    """A tenant's dataset, or 404."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None or dataset.tenant_id != tenant_id:
        raise NotFound(f"dataset {dataset_id} does not exist")
    return dataset


def stored_dataset(*, session: Session, dataset_id: uuid.UUID) -> Dataset:
    """A dataset row for a worker (any tenant: the job that names it was checked at submission)."""
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise LookupError(f"dataset {dataset_id} is missing")
    return dataset


def list_datasets(
    *, session: Session, tenant_id: uuid.UUID, cursor: str | None, limit: int
) -> dict[str, Any]:
    """One page of a tenant's datasets, newest first."""
    statement = select(Dataset).where(Dataset.tenant_id == tenant_id)
    rows = list(session.scalars(paginate(statement, Dataset, cursor, limit)))
    return page_of(rows, limit, DatasetRead.model_validate)


def delete_dataset(*, session: Session, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> None:
    """Delete a dataset and its file; 409 while an unfinished job names it (finished jobs keep results)."""
    dataset = get_dataset(session=session, tenant_id=tenant_id, dataset_id=dataset_id)
    refuse_while_used(
        session=session, tenant_id=tenant_id, what=f"dataset {dataset_id}", dataset_id=dataset_id
    )
    artifact_id = dataset.artifact_id
    session.delete(dataset)
    session.flush()
    artifacts_service.release(session=session, artifact_ids=[artifact_id])
    session.commit()
