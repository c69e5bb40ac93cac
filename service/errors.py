"""RFC 9457 problem documents: one exception base, one handler for every subclass."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import islice
from typing import Any, ClassVar

PROBLEM_BASE = "https://modelpress.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_ERRORS = 20
MAX_LOC_CHARS = 100


class Problem(Exception):
    """An error that is reported to the client as a problem document."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    def to_document(self, instance: str | None = None) -> dict[str, Any]:
        """The problem as a JSON-ready dict."""
        return problem_document(
            self.slug, self.title, self.status, self.detail, instance=instance, **self.extensions
        )


def problem_document(
    slug: str, title: str, status: int, detail: str, *, instance: str | None = None, **extensions: Any
) -> dict[str, Any]:
    """Build a problem document; also used for job errors stored in the database."""
    document: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        document["instance"] = instance
    document.update(extensions)
    return document


def error_entries(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic errors as problem entries: the first MAX_ERRORS, each location part cut short.

    A hostile body can hold thousands of bad keys, each long: the answer stays small all the same.
    """
    entries = []
    for error in islice(errors, MAX_ERRORS):
        loc = [part if isinstance(part, int) else str(part)[:MAX_LOC_CHARS] for part in error.get("loc", ())]
        entries.append({"loc": loc, "msg": str(error.get("msg", ""))[:500], "type": error.get("type", "")})
    return entries


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Missing or invalid API key"


class InvalidRequest(Problem):
    status, slug, title = 422, "validation-error", "The request is not valid"


class UnknownTechnique(Problem):
    status, slug, title = 422, "unknown-technique", "Unknown technique"


class InvalidParams(Problem):
    status, slug, title = 422, "invalid-params", "Invalid technique parameters"


class DatasetMismatch(Problem):
    status, slug, title = 422, "dataset-mismatch", "The dataset does not match the model"


class InvalidDataset(Problem):
    status, slug, title = 422, "invalid-dataset", "The dataset file is not valid"


class UnsupportedFormat(Problem):
    status, slug, title = 415, "unsupported-format", "Unsupported model format"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "The upload is larger than allowed"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "The request conflicts with the resource's state"


class IdempotencyMismatch(Problem):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency key reused with a different body"


class RangeNotSatisfiable(Problem):
    status, slug, title = 416, "range-not-satisfiable", "The requested range is not satisfiable"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "A dependency of the service is unavailable"


class NoGpuWorker(Problem):
    status, slug, title = 422, "no-gpu-worker", "No GPU worker is available"


class StorageQuotaExceeded(Problem):
    status, slug, title = 413, "storage-quota-exceeded", "The tenant's storage quota is used up"


class TooManyJobs(Problem):
    status, slug, title = 429, "too-many-jobs", "The tenant has too many active jobs"


class IdempotencyKeyInUse(Problem):
    status, slug, title = 409, "idempotency-key-in-use", "A request with this Idempotency-Key is in progress"
