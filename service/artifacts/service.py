"""Artifact operations shared by the domains that store uploads."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from service.artifacts.orm import Artifact, ArtifactKind
from service.uploads import ReceivedUpload


def add_upload(
    *, session: Session, tenant_id: uuid.UUID, upload: ReceivedUpload, kind: ArtifactKind, media_type: str
) -> Artifact:
    """Record the bytes of a streamed upload as an artifact of the tenant (flushed, not committed)."""
    artifact = Artifact(
        tenant_id=tenant_id,
        kind=kind,
        sha256=upload.stored.sha256,
        size_bytes=upload.stored.size_bytes,
        media_type=media_type,
        filename=upload.filename,
    )
    session.add(artifact)
    session.flush()
    return artifact
