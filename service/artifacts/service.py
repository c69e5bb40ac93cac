"""Artifact operations shared by the domains that store uploads."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.artifacts.orm import Artifact, ArtifactKind
from service.datasets.orm import Dataset
from service.errors import Conflict, NotFound
from service.jobs.orm import Job, JobStep
from service.jobs.usage import detach_finished, refuse_while_used
from service.models.orm import Model
from service.storage import ArtifactStore
from service.storage.base import StoredObject
from service.uploads import ReceivedUpload


def add_upload(
    *, session: Session, tenant_id: uuid.UUID, upload: ReceivedUpload, kind: ArtifactKind, media_type: str
) -> Artifact:
    """Record the bytes of a streamed upload as an artifact of the tenant (flushed, not committed)."""
    return add_output(
        session=session,
        tenant_id=tenant_id,
        stored=upload.stored,
        filename=upload.filename,
        kind=kind,
        media_type=media_type,
    )


def add_output(
    *,
    session: Session,
    tenant_id: uuid.UUID,
    stored: StoredObject,
    filename: str,
    job_id: uuid.UUID | None = None,
    kind: ArtifactKind = ArtifactKind.MODEL,
    media_type: str = "application/octet-stream",
) -> Artifact:
    """The one place an artifact row is created (flushed, not committed: it joins the caller's transition)."""
    artifact = Artifact(
        tenant_id=tenant_id,
        kind=kind,
        sha256=stored.sha256,
        size_bytes=stored.size_bytes,
        media_type=media_type,
        job_id=job_id,
        filename=filename,
    )
    session.add(artifact)
    session.flush()
    return artifact


def content_address(*, session: Session, artifact_id: uuid.UUID) -> tuple[str, int]:
    """The store key and size of an artifact's bytes (for a worker fetching its inputs)."""
    row = session.execute(
        select(Artifact.sha256, Artifact.size_bytes).where(Artifact.id == artifact_id)
    ).first()
    if row is None:
        raise LookupError(f"artifact {artifact_id} is missing")
    return row[0], row[1]


def references(*, session: Session, artifact_id: uuid.UUID) -> list[str]:
    """What still points at an artifact: 'model <id>', 'dataset <id>', 'job <id>' (deduplicated)."""
    found: list[str] = []
    for kind, column, owner in (
        ("model", Model.upload_artifact_id, Model.id),
        ("model", Model.onnx_artifact_id, Model.id),
        ("model", Model.normalized_artifact_id, Model.id),
        ("dataset", Dataset.artifact_id, Dataset.id),
        ("job", Job.artifact_id, Job.id),
        ("job", JobStep.artifact_id, JobStep.job_id),
    ):
        found += [
            f"{kind} {owner_id}" for owner_id in session.scalars(select(owner).where(column == artifact_id))
        ]
    return list(dict.fromkeys(found))


def release(*, session: Session, artifact_ids: Iterable[uuid.UUID | None]) -> int:
    """Delete the rows of these artifacts that nothing references any more (flushed, not committed).

    Their bytes stay in the store until the garbage collection finds no row with that SHA-256.
    """
    released = 0
    for artifact_id in {i for i in artifact_ids if i is not None}:
        if not references(session=session, artifact_id=artifact_id):
            released += session.execute(delete(Artifact).where(Artifact.id == artifact_id)).rowcount  # type: ignore[attr-defined]
    session.flush()
    return released


def collect_garbage(*, session: Session, store: ArtifactStore, grace_s: float) -> int:
    """Delete stored objects that no artifact row names and that were not written within `grace_s`.

    The grace period covers an upload of the same bytes that has written its object but not yet
    committed its row: such an object is fresh (a writer touches an object it finds already stored).
    """
    referenced = set(session.scalars(select(Artifact.sha256).distinct()))
    session.commit()
    cutoff = time.time() - grace_s
    deleted = 0
    for sha256, modified in store.objects():
        if sha256 not in referenced and modified < cutoff and store.delete(sha256):
            deleted += 1
    return deleted


def delete_artifact(*, session: Session, tenant_id: uuid.UUID, artifact_id: uuid.UUID) -> None:
    """Delete a job's output; 409 while a model, a dataset or an unfinished job holds it.

    Finished jobs that made it keep their reports; their artifact links become null.
    """
    artifact = session.get(Artifact, artifact_id)
    if artifact is None or artifact.tenant_id != tenant_id:
        raise NotFound(f"artifact {artifact_id} does not exist")
    holders = [r for r in references(session=session, artifact_id=artifact_id) if not r.startswith("job ")]
    if holders:
        raise Conflict(
            f"artifact {artifact_id} is the file of {holders[0]}; delete that instead", referenced_by=holders
        )
    refuse_while_used(
        session=session, tenant_id=tenant_id, what=f"artifact {artifact_id}", artifact_id=artifact_id
    )
    detach_finished(session=session, artifact_id=artifact_id)
    session.delete(artifact)
    session.commit()
