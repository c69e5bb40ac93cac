"""Model API schemas."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class ModelRead(BaseModel):
    """A model as clients see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    format: str | None
    size_bytes: int
    sha256: str
    status: str
    signature: dict[str, Any] | None
    parameters: int | None
    opset: int | None
    op_histogram: dict[str, int] | None
    error: dict[str, Any] | None
    warnings: list[str] | None
    normalization: dict[str, Any] | None
    input_shapes: list[list[int]] | None
    created_at: datetime
