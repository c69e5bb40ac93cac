"""Artifact API schemas."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class ArtifactRead(BaseModel):
    """Artifact metadata."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    sha256: str
    size_bytes: int
    media_type: str
    filename: str
    job_id: uuid.UUID | None
    created_at: datetime
