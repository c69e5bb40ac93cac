"""The API's operations as plain request descriptions, shared by the sync and the async client."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Document = dict[str, Any]


@dataclass(frozen=True)
class Call:
    """One HTTP request: what the clients send, before any I/O."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    upload: Path | None = None
    form: dict[str, str] = field(default_factory=dict)


def _present(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def upload_model(path: Path, *, name: str | None, input_shapes: str | None) -> Call:
    """POST /v1/models (multipart `file`, optional `name` and, for TorchScript, `input_shapes`)."""
    return Call("POST", "/v1/models", upload=Path(path), form=_present(name=name, input_shapes=input_shapes))


def get_model(model_id: str) -> Call:
    """GET /v1/models/{id}."""
    return Call("GET", f"/v1/models/{model_id}")


def upload_dataset(path: Path, *, name: str | None) -> Call:
    """POST /v1/datasets (multipart `file`: an .npz)."""
    return Call("POST", "/v1/datasets", upload=Path(path), form=_present(name=name))


def job_body(
    model_id: str,
    steps: list[Document | str],
    *,
    evaluation: Document | None = None,
    callback_url: str | None = None,
) -> Document:
    """The POST /v1/jobs body; a step is {"technique": ..., "params": {...}} or just a technique name."""
    body: Document = {
        "model_id": model_id,
        "steps": [{"technique": step} if isinstance(step, str) else step for step in steps],
    }
    body.update(_present(evaluation=evaluation, callback_url=callback_url))
    return body


def create_job(body: Document, *, idempotency_key: str) -> Call:
    """POST /v1/jobs with an Idempotency-Key: sending it again replays the same job."""
    return Call("POST", "/v1/jobs", json=body, headers={"Idempotency-Key": idempotency_key})


def get_job(job_id: str) -> Call:
    """GET /v1/jobs/{id}."""
    return Call("GET", f"/v1/jobs/{job_id}")


def list_jobs(*, status: str | None, model_id: str | None, limit: int, cursor: str | None) -> Call:
    """GET /v1/jobs: one page, newest first."""
    return Call(
        "GET", "/v1/jobs", params=_present(status=status, model_id=model_id, limit=limit, cursor=cursor)
    )


def cancel_job(job_id: str) -> Call:
    """POST /v1/jobs/{id}/cancel."""
    return Call("POST", f"/v1/jobs/{job_id}/cancel")


def report(job_id: str, *, html: bool = False) -> Call:
    """GET /v1/jobs/{id}/report as JSON, or as an HTML page."""
    accept = "text/html" if html else "application/json"
    return Call("GET", f"/v1/jobs/{job_id}/report", headers={"Accept": accept})


def log_page(job_id: str, *, step: int | None, limit: int, cursor: str | None) -> Call:
    """GET /v1/jobs/{id}/logs: one page of the job's lines, oldest first."""
    return Call("GET", f"/v1/jobs/{job_id}/logs", params=_present(step=step, limit=limit, cursor=cursor))


def get_artifact(artifact_id: str) -> Call:
    """GET /v1/artifacts/{id}: metadata."""
    return Call("GET", f"/v1/artifacts/{artifact_id}")


def artifact_content(artifact_id: str) -> Call:
    """GET /v1/artifacts/{id}/content: the bytes (ETag: their SHA-256)."""
    return Call("GET", f"/v1/artifacts/{artifact_id}/content")


def job_events(job_id: str) -> Call:
    """GET /v1/jobs/{id}/events: Server-Sent Events until the job ends."""
    return Call("GET", f"/v1/jobs/{job_id}/events", headers={"Accept": "text/event-stream"})


def techniques() -> Call:
    """GET /v1/techniques: the catalog."""
    return Call("GET", "/v1/techniques")


def webhook_secret() -> Call:
    """GET /v1/webhook-secret."""
    return Call("GET", "/v1/webhook-secret")
