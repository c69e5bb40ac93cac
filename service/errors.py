"""RFC 9457 problem documents: one exception base, one handler for every subclass.

Each problem type (`slug`) is one class with one title and status, on both sides: the API raises
these, and a worker stores the same documents in a failed job's or model's `error` (the classes
only a worker raises are in `service.failures`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any, ClassVar, Self

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
        """The problem as a JSON-ready dict (also what a failed job or model stores in `error`)."""
        document: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            document["instance"] = instance
        document.update(self.extensions)
        return document

    @classmethod
    def from_validation(
        cls, errors: Sequence[Mapping[str, Any]], *, prefix: str = "", root: str = "params", **extensions: Any
    ) -> Self:
        """The problem for pydantic errors: the first few in `detail`, at most MAX_ERRORS in `errors`.

        `root` names a location that is the whole value (a model validator's complaint).
        """
        entries = error_entries(errors)
        summary = "; ".join(f"{'.'.join(map(str, e['loc'])) or root}: {e['msg']}" for e in entries[:5])
        return cls(prefix + summary, errors=entries, error_count=len(errors), **extensions)


def problem_types() -> list[type[Problem]]:
    """Problem and every subclass imported so far, walked, so that a new class needs no registration."""
    found: list[type[Problem]] = [Problem]
    for cls in found:
        found.extend(cls.__subclasses__())
    return found


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


class HttpError(Problem):
    status, slug, title = 400, "http-error", "HTTP error"


class MethodNotAllowed(Problem):
    status, slug, title = 405, "method-not-allowed", "Method not allowed"


class TooManyHeaders(Problem):
    status, slug, title = 431, "too-many-headers", "Too many header fields"


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
    status, slug, title = 413, "payload-too-large", "The request body is larger than allowed"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "The request conflicts with the resource's state"


class IdempotencyMismatch(Problem):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency key reused with a different body"


class RangeNotSatisfiable(Problem):
    status, slug, title = 416, "range-not-satisfiable", "The requested range is not satisfiable"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "A dependency of the service is unavailable"


class Overloaded(Problem):
    status, slug, title = 503, "overloaded", "The service is overloaded"


class NoCapableWorker(Problem):
    status, slug, title = 409, "no-capable-worker", "No live worker can run this step"


class StorageQuotaExceeded(Problem):
    status, slug, title = 413, "storage-quota-exceeded", "The tenant's storage quota is used up"


class TooManyJobs(Problem):
    status, slug, title = 429, "too-many-jobs", "The tenant has too many active jobs"


class IdempotencyKeyInUse(Problem):
    status, slug, title = 409, "idempotency-key-in-use", "A request with this Idempotency-Key is in progress"


class IncompatibleStudent(Problem):
    status, slug, title = 422, "incompatible-student", "The student model does not fit the teacher"
