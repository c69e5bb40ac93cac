"""Dataset API schemas."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class DatasetRead(BaseModel):
    """A dataset as clients see it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    arrays: dict[str, Any]
    samples: int
    created_at: datetime
