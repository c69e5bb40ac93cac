"""Typed results of the API: each keeps the server's whole document in `raw` for what it does not name."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

Document = dict[str, Any]
FINAL_JOB_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
FINAL_MODEL_STATUSES = frozenset({"ready", "rejected"})
T = TypeVar("T")


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class Model:
    """An uploaded model; `status` is pending until a worker's ingest accepts or rejects it."""

    id: str
    name: str
    format: str | None
    size_bytes: int
    sha256: str
    status: str
    parameters: int | None
    signature: Document | None
    error: Document | None
    raw: Document = field(repr=False, compare=False)

    @classmethod
    def from_document(cls, doc: Document) -> Model:
        """Read a model document."""
        return cls(
            id=doc["id"],
            name=doc["name"],
            format=doc.get("format"),
            size_bytes=doc["size_bytes"],
            sha256=doc["sha256"],
            status=doc["status"],
            parameters=doc.get("parameters"),
            signature=doc.get("signature"),
            error=doc.get("error"),
            raw=doc,
        )


@dataclass(frozen=True)
class Dataset:
    """An uploaded .npz: its arrays ({name: {dtype, shape}}) and sample count."""

    id: str
    name: str
    arrays: dict[str, Document]
    samples: int
    raw: Document = field(repr=False, compare=False)

    @classmethod
    def from_document(cls, doc: Document) -> Dataset:
        """Read a dataset document."""
        return cls(id=doc["id"], name=doc["name"], arrays=doc["arrays"], samples=doc["samples"], raw=doc)


@dataclass(frozen=True)
class Step:
    """One technique of a job, with its own artifact and metrics."""

    index: int
    technique: str
    params: Document
    status: str
    artifact_id: str | None
    metrics: Document | None
    warnings: list[str]
    error: Document | None

    @classmethod
    def from_document(cls, doc: Document) -> Step:
        """Read a step of a job document."""
        return cls(
            index=doc["index"],
            technique=doc["technique"],
            params=doc.get("params") or {},
            status=doc["status"],
            artifact_id=doc.get("artifact_id"),
            metrics=doc.get("metrics"),
            warnings=list(doc.get("warnings") or []),
            error=doc.get("error"),
        )


@dataclass(frozen=True)
class Job:
    """A compression job: its state, steps, final artifact and, once measured, the comparison."""

    id: str
    model_id: str
    status: str
    stage: str
    progress: float
    steps: list[Step]
    artifact_id: str | None
    comparison: Document | None
    error: Document | None
    attempts: int
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    raw: Document = field(repr=False, compare=False)

    @property
    def finished(self) -> bool:
        """True once the job succeeded, failed or was cancelled."""
        return self.status in FINAL_JOB_STATUSES

    @classmethod
    def from_document(cls, doc: Document) -> Job:
        """Read a job document."""
        return cls(
            id=doc["id"],
            model_id=doc["model_id"],
            status=doc["status"],
            stage=doc["stage"],
            progress=float(doc["progress"]),
            steps=[Step.from_document(step) for step in doc.get("steps") or []],
            artifact_id=doc.get("artifact_id"),
            comparison=doc.get("comparison"),
            error=doc.get("error"),
            attempts=int(doc.get("attempts") or 0),
            created_at=_time(doc.get("created_at")),
            started_at=_time(doc.get("started_at")),
            finished_at=_time(doc.get("finished_at")),
            raw=doc,
        )


@dataclass(frozen=True)
class Report:
    """GET /v1/jobs/{id}/report: what was done to which model, and the comparison."""

    job_id: str
    model_id: str
    status: str
    artifact_id: str | None
    comparison: Document
    raw: Document = field(repr=False, compare=False)

    @property
    def verdict(self) -> Document:
        """smaller, faster, within_accuracy_budget and warnings."""
        return dict(self.comparison.get("verdict") or {})

    @classmethod
    def from_document(cls, doc: Document) -> Report:
        """Read a report document."""
        return cls(
            job_id=doc["job_id"],
            model_id=doc["model_id"],
            status=doc["status"],
            artifact_id=doc.get("artifact_id"),
            comparison=doc.get("comparison") or {},
            raw=doc,
        )


@dataclass(frozen=True)
class Artifact:
    """A stored file (a compressed model): metadata only; `Client.download` fetches the bytes."""

    id: str
    kind: str
    filename: str
    media_type: str
    size_bytes: int
    sha256: str
    job_id: str | None
    raw: Document = field(repr=False, compare=False)

    @classmethod
    def from_document(cls, doc: Document) -> Artifact:
        """Read an artifact document."""
        return cls(
            id=doc["id"],
            kind=doc["kind"],
            filename=doc["filename"],
            media_type=doc["media_type"],
            size_bytes=doc["size_bytes"],
            sha256=doc["sha256"],
            job_id=doc.get("job_id"),
            raw=doc,
        )


@dataclass(frozen=True)
class Download:
    """A downloaded artifact, checked against its SHA-256."""

    path: str
    size_bytes: int
    sha256: str


@dataclass(frozen=True)
class LogLine:
    """One structured line a worker recorded while running a job (`step` None: the job itself)."""

    seq: int
    time: datetime | None
    level: str
    step: int | None
    message: str
    fields: Document

    @classmethod
    def from_document(cls, doc: Document) -> LogLine:
        """Read a log line."""
        return cls(
            seq=doc["seq"],
            time=_time(doc.get("time")),
            level=doc["level"],
            step=doc.get("step"),
            message=doc["message"],
            fields=doc.get("fields") or {},
        )


@dataclass(frozen=True)
class Technique:
    """A catalog entry: what a job's step can name, and the JSON Schema of its params."""

    name: str
    queue: str
    summary: str
    params_schema: Document
    raw: Document = field(repr=False, compare=False)

    @classmethod
    def from_document(cls, doc: Document) -> Technique:
        """Read a catalog entry."""
        return cls(
            name=doc["name"],
            queue=doc["queue"],
            summary=doc.get("summary", ""),
            params_schema=doc.get("params_schema") or {},
            raw=doc,
        )


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the cursor of the next (None: nothing more to read now)."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class WebhookSecret:
    """The key that signs this tenant's webhook deliveries, and how a delivery carries the signature."""

    secret: str
    header: str
    algorithm: str

    @classmethod
    def from_document(cls, doc: Document) -> WebhookSecret:
        """Read the webhook-secret document."""
        return cls(secret=doc["secret"], header=doc["header"], algorithm=doc["algorithm"])
