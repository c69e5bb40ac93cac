"""Model state transitions of ingest: publish, claim, release, ready, rejected; each owns its commit."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from service import queue
from service.artifacts import service as artifacts_service
from service.db import utcnow
from service.models.orm import Model, ModelStatus
from service.storage.base import StoredObject

log = logging.getLogger("modelpress.ingest")


def claim_ingest(*, session: Session, model_id: uuid.UUID, max_attempts: int) -> Model | None:
    """Start an ingest attempt of a pending model; the model (detached), or None when not claimable."""
    claimed = session.execute(
        update(Model)
        .where(
            Model.id == model_id, Model.status == ModelStatus.PENDING, Model.ingest_attempts < max_attempts
        )
        .values(ingest_attempts=Model.ingest_attempts + 1, ingest_started_at=utcnow())
    ).rowcount  # type: ignore[attr-defined]
    session.commit()
    return session.get(Model, model_id) if claimed else None


def release_ingest(*, session: Session, model_id: uuid.UUID) -> None:
    """An attempt that failed for the service's reasons, not the model's: the sweeper publishes it again."""
    session.execute(
        update(Model)
        .where(Model.id == model_id, Model.status == ModelStatus.PENDING)
        .values(ingest_started_at=None)
    )
    session.commit()


def ingest_ready(
    *, session: Session, model_id: uuid.UUID, stored: StoredObject, facts: dict[str, Any]
) -> None:
    """Record the converted model's artifact and what ingest found, and mark the model ready."""
    tenant_id = session.scalar(select(Model.tenant_id).where(Model.id == model_id))
    assert tenant_id is not None
    artifact = artifacts_service.add_output(
        session=session, tenant_id=tenant_id, stored=stored, filename=f"{model_id}.onnx"
    )
    _end(
        session,
        model_id,
        status=ModelStatus.READY,
        onnx_artifact_id=artifact.id,
        format=facts["format"],
        signature=facts["signature"],
        parameters=facts["parameters"],
        opset=facts["opset"],
        op_histogram=facts["op_histogram"],
        warnings=facts.get("warnings") or [],
    )


def ingest_failed(*, session: Session, model_id: uuid.UUID, error: dict[str, Any]) -> None:
    """Reject a pending model with the problem document saying why."""
    _end(session, model_id, status=ModelStatus.REJECTED, error=error)


def republish_lost(
    *,
    session: Session,
    stale_before: datetime,
    stuck_before: datetime,
    max_attempts: int,
    exhausted_error: Callable[[int], dict[str, Any]],
) -> int:
    """Pending models whose ingest was never delivered or whose worker died; rejected when out of attempts."""
    pending = session.execute(
        select(Model.id, Model.ingest_attempts).where(
            Model.status == ModelStatus.PENDING,
            or_(
                Model.ingest_started_at.is_(None) & (Model.created_at < stale_before),
                Model.ingest_started_at < stuck_before,
            ),
        )
    ).all()
    session.commit()
    published = 0
    for model_id, attempts in pending:
        if attempts >= max_attempts:
            ingest_failed(session=session, model_id=model_id, error=exhausted_error(attempts))
        elif publish_ingest(model_id):
            published += 1
    return published


def publish_ingest(model_id: uuid.UUID) -> bool:
    """Send a pending model to ingest; False when the broker is down (the sweeper publishes it later)."""
    return queue.send(queue.INGEST_TASK, str(model_id))


def _end(session: Session, model_id: uuid.UUID, **values: Any) -> None:
    ended = session.execute(
        update(Model).where(Model.id == model_id, Model.status == ModelStatus.PENDING).values(**values)
    ).rowcount  # type: ignore[attr-defined]
    if not ended:  # another attempt (or the sweeper) ended it first: keep its outcome, add nothing
        session.rollback()
        return
    session.commit()
    log.info("model.ingested %s -> %s", model_id, values["status"])
