"""RFC 9457 problem documents as one exception type, whatever went wrong on the way."""

from __future__ import annotations

from typing import Any

import httpx

Document = dict[str, Any]
PROBLEM_FIELDS = ("type", "title", "status", "detail", "instance")


class ProblemError(Exception):
    """The server answered with a problem document (or the SDK made one: status 0 for client-side faults).

    `type`, `title`, `status`, `detail` and `instance` are the RFC 9457 members; `extensions` holds
    the others (`errors` of a validation failure, `job_status`, ...); `document` is the whole.
    """

    def __init__(self, document: Document, *, status: int | None = None) -> None:
        self.document = document
        self.type: str = str(document.get("type") or "about:blank")
        self.title: str = str(document.get("title") or "")
        self.status: int = int(document.get("status") or status or 0)
        self.detail: str = str(document.get("detail") or "")
        self.instance: str | None = document.get("instance")
        self.extensions: Document = {k: v for k, v in document.items() if k not in PROBLEM_FIELDS}
        super().__init__(f"{self.status} {self.title}: {self.detail}")

    @property
    def slug(self) -> str:
        """The last part of `type`, e.g. `validation-error`."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]


class ConnectionProblem(ProblemError):
    """The server could not be reached, or the connection broke off (status 0)."""


class DownloadProblem(ProblemError):
    """A download arrived, but not whole: its SHA-256 differs from the artifact's (status 0)."""


def problem_of(response: httpx.Response) -> ProblemError:
    """The exception for an error response (call after reading its body)."""
    try:
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        document = {
            "title": response.reason_phrase,
            "status": response.status_code,
            "detail": response.text[:500],
        }
    return ProblemError(document, status=response.status_code)


def unreachable(
    base_url: str, exc: httpx.TransportError, title: str = "Cannot reach the server"
) -> ConnectionProblem:
    """A transport failure as a problem (the CLI prints it like the server's own)."""
    return ConnectionProblem({"title": title, "status": 0, "detail": f"{base_url}: {exc}"})
