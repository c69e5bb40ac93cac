"""Model operations: record an upload, read, list and delete."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.artifacts import service as artifacts_service
from service.artifacts.orm import ArtifactKind
from service.db import utcnow
from service.errors import InvalidRequest, NotFound
from service.jobs.usage import refuse_while_used
from service.models.orm import Model, ModelStatus
from service.models.schemas import ModelRead
from service.pagination import page_of, paginate
from service.uploads import ReceivedUpload


def parse_input_shapes(raw: str | None) -> list[list[int]] | None:
    """The optional `input_shapes` form field: a JSON list of shapes, one per model input."""
    if raw is None or not raw.strip():
        return None
    try:
        shapes = json.loads(raw)
    except ValueError:
        shapes = None
    valid = (
        isinstance(shapes, list)
        and 0 < len(shapes) <= 16
        and all(isinstance(shape, list) and 0 < len(shape) <= 8 for shape in shapes)
        and all(type(dim) is int and 0 < dim <= 1_000_000 for shape in shapes for dim in shape)
    )
    if not valid:
        raise InvalidRequest(
            "input_shapes must be JSON like [[1, 3, 224, 224]]: one list of positive ints per input"
        )
    return shapes


def create_model(
    *,
    session: Session,
    tenant_id: uuid.UUID,
    upload: ReceivedUpload,
    name: str | None,
    input_shapes: list[list[int]] | None = None,
    model_id: uuid.UUID | None = None,
) -> Model:
    """Record an uploaded model as pending; ingest runs on a worker."""
    artifact = artifacts_service.add_upload(
        session=session,
        tenant_id=tenant_id,
        upload=upload,
        kind=ArtifactKind.UPLOAD,
        media_type="application/octet-stream",
    )
    model = Model(
        id=model_id or uuid.uuid4(),
        tenant_id=tenant_id,
        name=(name or upload.filename or "model")[:255],
        status=ModelStatus.PENDING,
        size_bytes=upload.stored.size_bytes,
        sha256=upload.stored.sha256,
        upload_artifact_id=artifact.id,
        input_shapes=input_shapes,
    )
    session.add(model)
    session.commit()
    return model


def get_model(*, session: Session, tenant_id: uuid.UUID, model_id: uuid.UUID) -> Model:
    """A tenant's model; another tenant's id is indistinguishable from a missing one."""
    model = session.get(Model, model_id)
    if model is None or model.tenant_id != tenant_id or model.deleted_at is not None:
        raise NotFound(f"model {model_id} does not exist")
    return model


def stored_model(*, session: Session, model_id: uuid.UUID) -> Model:
    """A model by id for the worker, whatever its tenant (the API checked ownership at submission)."""
    model = session.get(Model, model_id)
    if model is None or model.onnx_artifact_id is None:
        raise NotFound(f"model {model_id} does not exist or has no ONNX artifact")
    return model


def list_models(
    *, session: Session, tenant_id: uuid.UUID, status: str | None, cursor: str | None, limit: int
) -> dict[str, Any]:
    """One page of a tenant's models, newest first."""
    statement = select(Model).where(Model.tenant_id == tenant_id, Model.deleted_at.is_(None))
    if status:
        statement = statement.where(Model.status == status)
    rows = list(session.scalars(paginate(statement, Model, cursor, limit)))
    return page_of(rows, limit, ModelRead.model_validate)


def delete_model(*, session: Session, tenant_id: uuid.UUID, model_id: uuid.UUID) -> None:
    """Hide a model; jobs that used it keep their artifacts and reports; 409 while one is unfinished."""
    model = get_model(session=session, tenant_id=tenant_id, model_id=model_id)
    refuse_while_used(session=session, tenant_id=tenant_id, what=f"model {model_id}", model_id=model_id)
    model.deleted_at = utcnow()
    session.commit()
