"""Imports every ORM module so the metadata is complete (Alembic and create_all use this)."""

from service.artifacts.orm import Artifact
from service.datasets.orm import Dataset
from service.db import Base
from service.idempotency.orm import IdempotencyKey
from service.jobs.orm import Job, JobLogLine, JobStep, Metric
from service.models.orm import Model
from service.tenants.orm import ApiKey, Tenant
from service.workers.orm import Worker

__all__ = [
    "ApiKey",
    "Artifact",
    "Base",
    "Dataset",
    "IdempotencyKey",
    "Job",
    "JobLogLine",
    "JobStep",
    "Metric",
    "Model",
    "Tenant",
    "Worker",
]
